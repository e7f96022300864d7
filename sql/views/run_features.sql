-- run_features: every run with everything known about it, wide.
-- Grain: one row per run (finished, failed or running).
-- Open-ended names live in MAP columns, so new parameter, architecture, metric or
-- meta-feature names need no view change: params_num / params_text (typed parameters),
-- arch_num / arch_text (architecture descriptors), metrics (the 'valid' split),
-- metrics_by_split ('<split>/<name>' keys, every split), meta_features (the dataset's).
-- Maps are NULL when the run has no entry of that kind. Each long table is read once per
-- query through a LATERAL join (measured ~25% faster than one subquery per map), correlated
-- on the BIGINT seq so a filter on runs (e.g. one dataset) reaches the long-table scans as a
-- join filter (about 2x faster than correlating on the VARCHAR run_id, 1M runs).
CREATE OR REPLACE VIEW run_features AS
SELECT
    r.run_id,
    r.dataset,
    r.model,
    r.status,
    r.started_at,
    r.finished_at,
    r.duration_s,
    r.cpu_s,
    r.peak_mem_mb,
    r.seed,
    r.source,
    r.error,
    r.seq,
    d.task,
    d.n_rows,
    d.n_features,
    d.n_classes,
    mf.meta_features,
    p.params_num,
    p.params_text,
    a.arch_num,
    a.arch_text,
    x.metrics,
    x.metrics_by_split
FROM runs AS r
LEFT JOIN datasets AS d ON d.name = r.dataset
LEFT JOIN LATERAL (
    SELECT map(list(m.name), list(m.value)) AS meta_features
    FROM dataset_meta_features AS m
    WHERE m.dataset = r.dataset
) AS mf ON TRUE
LEFT JOIN LATERAL (
    SELECT
        map(
            list(p.name) FILTER (WHERE p.value_num IS NOT NULL),
            list(p.value_num) FILTER (WHERE p.value_num IS NOT NULL)
        ) AS params_num,
        map(
            list(p.name) FILTER (WHERE p.value_text IS NOT NULL),
            list(p.value_text) FILTER (WHERE p.value_text IS NOT NULL)
        ) AS params_text
    FROM run_params AS p
    WHERE p.seq = r.seq
) AS p ON TRUE
LEFT JOIN LATERAL (
    SELECT
        map(
            list(a.name) FILTER (WHERE a.value_num IS NOT NULL),
            list(a.value_num) FILTER (WHERE a.value_num IS NOT NULL)
        ) AS arch_num,
        map(
            list(a.name) FILTER (WHERE a.value_text IS NOT NULL),
            list(a.value_text) FILTER (WHERE a.value_text IS NOT NULL)
        ) AS arch_text
    FROM run_architecture AS a
    WHERE a.seq = r.seq
) AS a ON TRUE
LEFT JOIN LATERAL (
    SELECT
        map(
            list(x.name) FILTER (WHERE x.split = 'valid'),
            list(x.value) FILTER (WHERE x.split = 'valid')
        ) AS metrics,
        map(list(x.split || '/' || x.name), list(x.value)) AS metrics_by_split
    FROM run_metrics AS x
    WHERE x.seq = r.seq
) AS x ON TRUE
