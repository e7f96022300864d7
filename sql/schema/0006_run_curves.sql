-- 0006_run_curves: learning curves, and runs stopped early by a pruner.
--
-- run_curves holds the intermediate values of a run: one row per run x metric x step, the
-- value measured at that step and the seconds elapsed since the run's start (NULL when
-- unknown). Like the other long tables (see 0001_core.sql) it carries NO primary or foreign
-- key: a curve store reaches millions of rows, and uniqueness of (run_id, metric, step) and
-- the reference to runs are enforced by warehouse/curves.py inside the ingest transaction and
-- re-checked by the audits orphan_run_curves and duplicate_run_curves. Each row carries its
-- run's seq (runs.seq), on which the views join. NOT NULL and CHECK constraints stay.
--
-- runs.status gains 'pruned': a trial a pruner stopped early (it did not reach its final
-- value, so, like failed and running runs, it never enters the training matrix, the
-- incumbents or any other reader of finished runs). DuckDB cannot alter a CHECK constraint,
-- so runs is rebuilt: renamed aside, created again with the same columns, defaults, primary
-- key and checks (only the status CHECK differs), filled with every row in seq order (the
-- zone maps on seq stay tight), and the old table dropped. The views read runs by name and
-- are bound again on use; no index or other object depends on runs. One transaction: a
-- failure leaves the file as it was.
ALTER TABLE runs RENAME TO runs_before_0006;

CREATE TABLE runs (
    run_id       VARCHAR PRIMARY KEY,
    dataset      VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    status       VARCHAR NOT NULL DEFAULT 'finished'
                 CHECK (status IN ('finished', 'failed', 'running', 'pruned')),
    started_at   TIMESTAMP,
    finished_at  TIMESTAMP,
    duration_s   DOUBLE CHECK (duration_s >= 0),
    cpu_s        DOUBLE CHECK (cpu_s >= 0),
    peak_mem_mb  DOUBLE CHECK (peak_mem_mb >= 0),
    seed         BIGINT,
    source       VARCHAR,
    error        VARCHAR,
    logged_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    seq          BIGINT NOT NULL
);

INSERT INTO runs (
    run_id, dataset, model, status, started_at, finished_at, duration_s, cpu_s, peak_mem_mb,
    seed, source, error, logged_at, seq
)
SELECT
    run_id, dataset, model, status, started_at, finished_at, duration_s, cpu_s, peak_mem_mb,
    seed, source, error, logged_at, seq
FROM runs_before_0006
ORDER BY seq;

DROP TABLE runs_before_0006;

CREATE TABLE run_curves (
    run_id     VARCHAR NOT NULL,
    seq        BIGINT NOT NULL,
    metric     VARCHAR NOT NULL,
    step       BIGINT NOT NULL CHECK (step >= 0),
    value      DOUBLE NOT NULL CHECK (isfinite(value)),
    elapsed_s  DOUBLE CHECK (isfinite(elapsed_s) AND elapsed_s >= 0)
);
