-- 0005_trial_claims: one row per trial claimed by a search process (optimize, a sweep, an
-- ask/tell worker), so that several processes on one warehouse share a budget and never train
-- the same config twice (metaopt_bayes/trials.py, warehouse/claims.py). A process claims a
-- trial in one write transaction that first fails stale claims, then counts the logged runs of
-- the search plus its claims still running against the budget and refuses a config already
-- claimed or logged (config_key: the caller's canonical text of the config). DuckDB lets one
-- process hold the file at a time, so the count and the insert see every other process's
-- claims. state: running (owner host:pid is training it, heartbeat_at refreshed every few
-- seconds), complete (its run, run_id, is logged), fail (the owner stopped heartbeating or was
-- interrupted before logging: the slot is free and the config may be claimed again). The
-- run_id is chosen at claim time and given to log_run, so a run logged by a process killed
-- before marking its claim complete is still found. Times are epoch seconds (DOUBLE).
CREATE TABLE trial_claims (
    claim_id      VARCHAR PRIMARY KEY,
    dataset       VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,
    config_key    VARCHAR NOT NULL,
    config        JSON,
    state         VARCHAR NOT NULL CHECK (state IN ('running', 'complete', 'fail')),
    owner         VARCHAR NOT NULL,
    run_id        VARCHAR NOT NULL,
    claimed_at    DOUBLE NOT NULL,
    heartbeat_at  DOUBLE NOT NULL,
    finished_at   DOUBLE,
    error         VARCHAR
);
