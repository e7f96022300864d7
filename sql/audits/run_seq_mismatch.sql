-- run_seq_mismatch: a run whose seq is not unique, or a parameter, metric, architecture or
-- curve row whose seq differs from its run's seq (views join the long tables on seq). Must
-- return zero rows.
SELECT 'runs' AS source, run_id, seq FROM runs WHERE seq IN (
    SELECT seq FROM runs GROUP BY seq HAVING count(*) > 1
)
UNION ALL
SELECT 'run_params', p.run_id, p.seq FROM run_params AS p
JOIN runs AS r ON r.run_id = p.run_id WHERE r.seq <> p.seq
UNION ALL
SELECT 'run_metrics', x.run_id, x.seq FROM run_metrics AS x
JOIN runs AS r ON r.run_id = x.run_id WHERE r.seq <> x.seq
UNION ALL
SELECT 'run_architecture', a.run_id, a.seq FROM run_architecture AS a
JOIN runs AS r ON r.run_id = a.run_id WHERE r.seq <> a.seq
UNION ALL
SELECT 'run_curves', c.run_id, c.seq FROM run_curves AS c
JOIN runs AS r ON r.run_id = c.run_id WHERE r.seq <> c.seq
