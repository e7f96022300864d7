-- metric_without_direction: metric names logged (as a run's metric or a learning curve's)
-- but missing from the metrics table, so incumbents and the curve views cannot know whether
-- higher or lower is better. Must return zero rows.
SELECT DISTINCT x.name FROM run_metrics AS x ANTI JOIN metrics AS m ON m.name = x.name
UNION
SELECT DISTINCT c.metric FROM run_curves AS c ANTI JOIN metrics AS m ON m.name = c.metric
