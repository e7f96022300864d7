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
    ) AS arch_text
FROM run_metrics AS x
JOIN runs AS r ON r.run_id = x.run_id
WHERE r.status = 'finished'
