-- leaderboard: model families ranked by their best finished run, per dataset and metric.
-- Grain: one row per (dataset, metric, split, model); rank 1 is the best model family for
-- that dataset and metric, by the metric's direction (ties share a rank).
CREATE OR REPLACE VIEW leaderboard AS
SELECT
    dataset,
    metric,
    split,
    rank() OVER (
        PARTITION BY dataset, metric, split
        ORDER BY CASE WHEN direction = 'minimize' THEN value ELSE -value END
    ) AS rank,
    model,
    value,
    direction,
    run_id,
    n_runs
FROM incumbents
