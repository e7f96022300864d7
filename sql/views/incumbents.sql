-- incumbents: the best finished run for each dataset x model family x metric x split.
-- Grain: one row per (dataset, model, metric, split) that has at least one finished run.
-- "Best" honours the metric's direction from the metrics table (maximize: highest value,
-- minimize: lowest); ties go to the earliest logged run (lowest seq). n_runs counts the
-- finished runs that reported the metric.
CREATE OR REPLACE VIEW incumbents AS
WITH scored AS (
    SELECT
        r.dataset,
        r.model,
        x.name AS metric,
        x.split,
        x.value,
        r.run_id,
        r.seq,
        coalesce(m.direction, 'maximize') AS direction,
        CASE WHEN m.direction = 'minimize' THEN -x.value ELSE x.value END AS score
    FROM run_metrics AS x
    JOIN runs AS r ON r.run_id = x.run_id
    LEFT JOIN metrics AS m ON m.name = x.name
    WHERE r.status = 'finished'
)
SELECT
    dataset,
    model,
    metric,
    split,
    any_value(direction) AS direction,
    arg_max(run_id, struct_pack(s := score, o := -seq)) AS run_id,
    arg_max(value, struct_pack(s := score, o := -seq)) AS value,
    count(*) AS n_runs
FROM scored
GROUP BY dataset, model, metric, split
