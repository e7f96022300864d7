-- family_ranking: model families ranked per dataset from the run history.
-- Grain: one row per (dataset, metric, model) with at least one finished run reporting the
-- metric on the 'valid' split. best = the family's best value by the metric's direction
-- (metrics table; unknown metrics maximize), median_value its median over runs, n_runs the
-- finished runs with the metric, n_failed the family's failed runs on the dataset,
-- median_duration_s the median wall time of the finished runs. rank = 1 for the best family
-- on that dataset and metric (ties share a rank); gap = |best - best of the rank-1 family|.
CREATE OR REPLACE VIEW family_ranking AS
WITH per_run AS (
    SELECT
        r.dataset,
        r.model,
        x.name AS metric,
        x.value,
        r.duration_s,
        coalesce(m.direction, 'maximize') AS direction
    FROM run_metrics AS x
    JOIN runs AS r ON r.seq = x.seq
    LEFT JOIN metrics AS m ON m.name = x.name
    WHERE r.status = 'finished' AND x.split = 'valid'
),
fam AS (
    SELECT
        dataset,
        metric,
        model,
        any_value(direction) AS direction,
        CASE WHEN any_value(direction) = 'minimize' THEN min(value) ELSE max(value) END AS best,
        median(value) AS median_value,
        count(*) AS n_runs,
        median(duration_s) AS median_duration_s
    FROM per_run
    GROUP BY dataset, metric, model
),
failed AS (
    SELECT dataset, model, count(*) AS n_failed
    FROM runs
    WHERE status = 'failed'
    GROUP BY dataset, model
),
ranked AS (
    SELECT
        f.*,
        CASE WHEN f.direction = 'minimize' THEN f.best ELSE -f.best END AS loss
    FROM fam AS f
)
SELECT
    k.dataset,
    k.metric,
    k.model,
    k.direction,
    k.best,
    k.median_value,
    k.n_runs,
    coalesce(fl.n_failed, 0) AS n_failed,
    k.median_duration_s,
    rank() OVER (PARTITION BY k.dataset, k.metric ORDER BY k.loss) AS rank,
    k.loss - min(k.loss) OVER (PARTITION BY k.dataset, k.metric) AS gap
FROM ranked AS k
LEFT JOIN failed AS fl ON fl.dataset = k.dataset AND fl.model = k.model
