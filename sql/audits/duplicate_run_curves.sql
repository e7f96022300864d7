-- duplicate_run_curves: a run with two points for one metric at the same step (run_curves has
-- no primary key; ingest refuses them, see 0006_run_curves.sql). Must return zero rows.
SELECT run_id, metric, step, count(*) AS n
FROM run_curves
GROUP BY run_id, metric, step
HAVING count(*) > 1
