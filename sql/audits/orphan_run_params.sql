-- orphan_run_params: parameter rows whose run does not exist. Must return zero rows.
SELECT p.run_id, p.name FROM run_params AS p ANTI JOIN runs AS r ON r.run_id = p.run_id
