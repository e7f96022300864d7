-- curve_points: every learning-curve point with its run, the budget it is measured against
-- and the best value reached so far.
-- Grain: one row per (run, metric, step) in run_curves, any run status.
-- budget = the largest step reached by any FINISHED run of the same dataset x model x metric
-- (NULL while no finished run has a curve of that metric); budget_fraction = step / budget
-- (NULL without a budget, or when it is 0). best_so_far = the best value at or before this
-- step, by the metric's direction (metrics table; unknown metrics maximize): a running max,
-- or a running min for minimized metrics, computed as one running max of direction * value.
-- The window is partitioned by dataset and model too (each run has one of each), so a filter
-- on dataset or model reaches the table scans instead of waiting behind the window.
CREATE OR REPLACE VIEW curve_points AS
SELECT
    p.run_id,
    p.seq,
    p.dataset,
    p.model,
    p.status,
    p.metric,
    p.direction,
    p.step,
    p.elapsed_s,
    p.value,
    p.sign * max(p.sign * p.value) OVER (
        PARTITION BY p.dataset, p.model, p.seq, p.metric
        ORDER BY p.step
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS best_so_far,
    b.budget,
    CAST(p.step AS DOUBLE) / nullif(b.budget, 0) AS budget_fraction
FROM (
    SELECT
        r.run_id,
        c.seq,
        r.dataset,
        r.model,
        r.status,
        c.metric,
        coalesce(m.direction, 'maximize') AS direction,
        CASE WHEN m.direction = 'minimize' THEN -1.0 ELSE 1.0 END AS sign,
        c.step,
        c.elapsed_s,
        c.value
    FROM run_curves AS c
    JOIN runs AS r ON r.seq = c.seq
    LEFT JOIN metrics AS m ON m.name = c.metric
) AS p
LEFT JOIN (
    SELECT r.dataset, r.model, c.metric, max(c.step) AS budget
    FROM run_curves AS c
    JOIN runs AS r ON r.seq = c.seq
    WHERE r.status = 'finished'
    GROUP BY r.dataset, r.model, c.metric
) AS b ON b.dataset = p.dataset AND b.model = p.model AND b.metric = p.metric
