-- run_features: every run with everything known about it, wide.
-- Grain: one row per run (finished, failed or running).
-- Open-ended names live in MAP columns, so new parameter, architecture, metric or
-- meta-feature names need no view change: params_num / params_text (typed parameters),
-- arch_num / arch_text (architecture descriptors), metrics (the 'valid' split),
-- metrics_by_split ('<split>/<name>' keys, every split), meta_features (the dataset's).
-- Maps are NULL when the run has no entry of that kind; keys are sorted by name.
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
    (
        SELECT map(list(m.name ORDER BY m.name), list(m.value ORDER BY m.name))
        FROM dataset_meta_features AS m
        WHERE m.dataset = r.dataset
    ) AS meta_features,
    (
        SELECT map(list(p.name ORDER BY p.name), list(p.value_num ORDER BY p.name))
        FROM run_params AS p
        WHERE p.run_id = r.run_id AND p.value_num IS NOT NULL
    ) AS params_num,
    (
        SELECT map(list(p.name ORDER BY p.name), list(p.value_text ORDER BY p.name))
        FROM run_params AS p
        WHERE p.run_id = r.run_id AND p.value_text IS NOT NULL
    ) AS params_text,
    (
        SELECT map(list(a.name ORDER BY a.name), list(a.value_num ORDER BY a.name))
        FROM run_architecture AS a
        WHERE a.run_id = r.run_id AND a.value_num IS NOT NULL
    ) AS arch_num,
    (
        SELECT map(list(a.name ORDER BY a.name), list(a.value_text ORDER BY a.name))
        FROM run_architecture AS a
        WHERE a.run_id = r.run_id AND a.value_text IS NOT NULL
    ) AS arch_text,
    (
        SELECT map(list(x.name ORDER BY x.name), list(x.value ORDER BY x.name))
        FROM run_metrics AS x
        WHERE x.run_id = r.run_id AND x.split = 'valid'
    ) AS metrics,
    (
        SELECT map(
            list(x.split || '/' || x.name ORDER BY x.split, x.name),
            list(x.value ORDER BY x.split, x.name)
        )
        FROM run_metrics AS x
        WHERE x.run_id = r.run_id
    ) AS metrics_by_split
FROM runs AS r
LEFT JOIN datasets AS d ON d.name = r.dataset
