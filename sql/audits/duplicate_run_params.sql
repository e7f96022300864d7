-- duplicate_run_params: a run with the same parameter twice. Must return zero rows.
SELECT run_id, name, count(*) AS n FROM run_params GROUP BY run_id, name HAVING count(*) > 1
