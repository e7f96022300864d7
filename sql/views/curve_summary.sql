-- curve_summary: how far each run's learning curve got and what it showed on the way.
-- Grain: one row per (run, metric) with at least one point in run_curves, any run status.
-- n_points; last_step, last_value, last_elapsed_s (the point with the largest step);
-- best_value (by the metric's direction, as curve_points' best_so_far); budget and
-- budget_fraction = last_step / budget, from curve_points (the largest step of a FINISHED run
-- of the same dataset x model x metric); value_at_10 / value_at_25 / value_at_50 = the value
-- of the last point at or before 10% / 25% / 50% of the budget (NULL without a budget or
-- without such a point): what a pruner sees of a run at those rungs.
CREATE OR REPLACE VIEW curve_summary AS
SELECT
    run_id,
    seq,
    dataset,
    model,
    status,
    metric,
    direction,
    count(*) AS n_points,
    max(step) AS last_step,
    arg_max(value, step) AS last_value,
    arg_max(elapsed_s, step) AS last_elapsed_s,
    CASE WHEN direction = 'minimize' THEN min(value) ELSE max(value) END AS best_value,
    any_value(budget) AS budget,
    CAST(max(step) AS DOUBLE) / nullif(any_value(budget), 0) AS budget_fraction,
    arg_max(value, step) FILTER (WHERE step <= 0.10 * budget) AS value_at_10,
    arg_max(value, step) FILTER (WHERE step <= 0.25 * budget) AS value_at_25,
    arg_max(value, step) FILTER (WHERE step <= 0.50 * budget) AS value_at_50
FROM curve_points
GROUP BY run_id, seq, dataset, model, status, metric, direction
