-- duplicate_run_architecture: a run with the same architecture descriptor twice.
-- Must return zero rows.
SELECT run_id, name, count(*) AS n FROM run_architecture GROUP BY run_id, name HAVING count(*) > 1
