-- curve_out_of_range: learning-curve values outside the known range of their metric (e.g. an
-- accuracy of 1.7 at some step). Must return zero rows.
SELECT c.run_id, c.metric, c.step, c.value, m.lower, m.upper
FROM run_curves AS c
JOIN metrics AS m ON m.name = c.metric
WHERE c.value < m.lower OR c.value > m.upper
