-- metric_without_direction: metric names logged but missing from the metrics table, so
-- incumbents cannot know whether higher or lower is better. Must return zero rows.
SELECT DISTINCT x.name FROM run_metrics AS x ANTI JOIN metrics AS m ON m.name = x.name
