-- duplicate_run_metrics: a run with the same metric twice on one split. Must return zero rows.
SELECT run_id, name, split, count(*) AS n
FROM run_metrics
GROUP BY run_id, name, split
HAVING count(*) > 1
