-- orphan_run_architecture: architecture rows whose run does not exist. Must return zero rows.
SELECT a.run_id, a.name FROM run_architecture AS a ANTI JOIN runs AS r ON r.run_id = a.run_id
