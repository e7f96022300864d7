-- orphan_run_curves: learning-curve points whose run does not exist. Must return zero rows.
SELECT c.run_id, c.metric, c.step FROM run_curves AS c ANTI JOIN runs AS r ON r.run_id = c.run_id
