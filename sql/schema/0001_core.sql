-- 0001_core: the core metaopt warehouse — datasets, their meta-features, training runs
-- (parameters, metrics, architecture in long, typed tables), known metrics, fitted
-- meta-models and recommendations.
--
-- Keys and constraints: primary keys, NOT NULL and CHECK constraints are declared on every
-- table where DuckDB can afford them; foreign keys on the small tables
-- (dataset_meta_features, recommendations). runs.dataset has no FOREIGN KEY: with 1M runs
-- the reference check added ~3 s to a bulk insert (DuckDB 2.0, 2 cores); ingest creates
-- missing datasets in the same transaction and the audit runs_without_dataset re-checks.
-- The three long tables (run_params, run_metrics, run_architecture; ~10
-- rows per run) deliberately carry NO primary or foreign key: measured on DuckDB 2.0 with
-- 1M runs x 10 params, inserting 10M rows took 36.8 s with PRIMARY KEY (run_id, name) +
-- FOREIGN KEY (run_id) versus 2.3 s without. Uniqueness of (run_id, name[, split]) and the
-- reference to runs are enforced instead by warehouse/ingest.py (vectorized validation
-- inside the same transaction as the insert, against existing ids) and re-checked by
-- sql/audits/*.sql (`metaopt check`). NOT NULL and CHECK constraints stay: they are cheap.
-- Each long row carries its run's `seq` (runs.seq, the internal BIGINT key, unique per run)
-- next to the user-facing run_id: views and the training matrix join and group on seq,
-- measured ~8x faster than joining 4M metric rows to 1M runs on the VARCHAR run_id.

CREATE TABLE datasets (
    name          VARCHAR PRIMARY KEY,
    task          VARCHAR CHECK (task IN ('classification', 'regression')),
    target        VARCHAR,
    source        VARCHAR,
    n_rows        BIGINT CHECK (n_rows >= 0),
    n_features    BIGINT CHECK (n_features >= 0),
    n_classes     BIGINT CHECK (n_classes >= 0),
    content_hash  VARCHAR,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE dataset_meta_features (
    dataset    VARCHAR NOT NULL REFERENCES datasets (name),
    name       VARCHAR NOT NULL,
    value      DOUBLE NOT NULL CHECK (isfinite(value)),
    method     VARCHAR NOT NULL DEFAULT 'user',
    compute_s  DOUBLE CHECK (compute_s >= 0),
    PRIMARY KEY (dataset, name)
);

CREATE TABLE runs (
    run_id       VARCHAR PRIMARY KEY,
    dataset      VARCHAR NOT NULL,
    model        VARCHAR NOT NULL,
    status       VARCHAR NOT NULL DEFAULT 'finished'
                 CHECK (status IN ('finished', 'failed', 'running')),
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

CREATE TABLE run_params (
    run_id      VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    name        VARCHAR NOT NULL,
    value_num   DOUBLE CHECK (value_num IS NULL OR isfinite(value_num)),
    value_text  VARCHAR,
    CHECK (value_num IS NULL OR value_text IS NULL)
);

CREATE TABLE run_metrics (
    run_id  VARCHAR NOT NULL,
    seq     BIGINT NOT NULL,
    name    VARCHAR NOT NULL,
    split   VARCHAR NOT NULL DEFAULT 'valid',
    value   DOUBLE NOT NULL CHECK (isfinite(value))
);

CREATE TABLE run_architecture (
    run_id      VARCHAR NOT NULL,
    seq         BIGINT NOT NULL,
    name        VARCHAR NOT NULL,
    value_num   DOUBLE CHECK (value_num IS NULL OR isfinite(value_num)),
    value_text  VARCHAR,
    CHECK (value_num IS NULL OR value_text IS NULL)
);

CREATE TABLE metrics (
    name       VARCHAR PRIMARY KEY,
    direction  VARCHAR NOT NULL CHECK (direction IN ('maximize', 'minimize')),
    lower      DOUBLE,
    upper      DOUBLE,
    CHECK (lower IS NULL OR upper IS NULL OR lower <= upper)
);

INSERT INTO metrics (name, direction, lower, upper) VALUES
    ('accuracy', 'maximize', 0, 1),
    ('balanced_accuracy', 'maximize', 0, 1),
    ('predictive_accuracy', 'maximize', 0, 1),
    ('precision_macro', 'maximize', 0, 1),
    ('recall_macro', 'maximize', 0, 1),
    ('f1_macro', 'maximize', 0, 1),
    ('f1', 'maximize', 0, 1),
    ('roc_auc', 'maximize', 0, 1),
    ('r2', 'maximize', NULL, 1),
    ('log_loss', 'minimize', 0, NULL),
    ('rmse', 'minimize', 0, NULL),
    ('mse', 'minimize', 0, NULL),
    ('mae', 'minimize', 0, NULL),
    ('metric_error', 'minimize', NULL, NULL),
    ('duration_s', 'minimize', 0, NULL),
    ('time_train_s', 'minimize', 0, NULL),
    ('time_infer_s', 'minimize', 0, NULL);

CREATE TABLE meta_models (
    model_id       VARCHAR PRIMARY KEY,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp,
    metric         VARCHAR NOT NULL,
    model_family   VARCHAR,
    method         VARCHAR NOT NULL,
    config_hash    VARCHAR,
    config         JSON,
    path           VARCHAR,
    n_runs         BIGINT CHECK (n_runs >= 0),
    n_datasets     BIGINT CHECK (n_datasets >= 0),
    max_rhat       DOUBLE,
    min_ess        DOUBLE,
    n_divergences  BIGINT CHECK (n_divergences >= 0),
    fit_s          DOUBLE CHECK (fit_s >= 0),
    compile_s      DOUBLE CHECK (compile_s >= 0),
    status         VARCHAR NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'warning', 'failed')),
    diagnostics    JSON
);

CREATE TABLE recommendations (
    rec_id             VARCHAR PRIMARY KEY,
    created_at         TIMESTAMP NOT NULL DEFAULT current_timestamp,
    model_id           VARCHAR REFERENCES meta_models (model_id),
    dataset            VARCHAR NOT NULL REFERENCES datasets (name),
    model              VARCHAR NOT NULL,
    config             JSON NOT NULL,
    mean               DOUBLE,
    sd                 DOUBLE CHECK (sd >= 0),
    acquisition        VARCHAR,
    acquisition_value  DOUBLE,
    rank               INTEGER CHECK (rank >= 1),
    run_id             VARCHAR
);
