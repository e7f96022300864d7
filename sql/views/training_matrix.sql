-- training_matrix: what the meta-learner reads — finished runs with one metric value each.
-- Grain: one row per (finished run, metric, split). Filter it to one model family and one
-- metric to get a training set. Parameters and architecture stay in typed MAP columns
-- (params_num, params_text, arch_num, arch_text) so new names need no view change;
-- Warehouse.training_matrix() pivots them into 'params.<name>' / 'arch.<name>' columns.
-- Dataset meta-features are not repeated here: read them from dataset_features.
CREATE OR REPLACE VIEW training_matrix AS
SELECT
    x.name AS metric,
    x.split,
    x.value,
    r.run_id,
    r.dataset,
    r.model,
    r.duration_s,
    r.cpu_s,
    r.seq,
    p.params_num,
    p.params_text,
    a.arch_num,
    a.arch_text
FROM run_metrics AS x
JOIN runs AS r ON r.seq = x.seq
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
WHERE r.status = 'finished'
