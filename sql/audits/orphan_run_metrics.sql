-- orphan_run_metrics: metric rows whose run does not exist. Must return zero rows.
SELECT x.run_id, x.name, x.split FROM run_metrics AS x ANTI JOIN runs AS r ON r.run_id = x.run_id
