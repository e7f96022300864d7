-- metric_out_of_range: metric values outside the known range of their metric
-- (e.g. accuracy above 1). Must return zero rows.
SELECT x.run_id, x.name, x.split, x.value, m.lower, m.upper
FROM run_metrics AS x
JOIN metrics AS m ON m.name = x.name
WHERE x.value < m.lower OR x.value > m.upper
