-- family_predictions: the meta-learner's predictions against what the runs then scored,
-- per model family.
-- Grain: one row per (model, metric) with at least one recommendation that was trained: a
-- recommendations row with a run_id (written by `optimize`, one model or across families)
-- whose meta-model (meta_models.metric) names the metric and whose run reported it on the
-- 'valid' split. n = such predictions, n_datasets = distinct datasets; mean_predicted /
-- mean_observed; bias = mean(observed - predicted); mae, rmse; coverage_90 = share of runs
-- inside mean +- 1.645 sd (the predictive sd; a Gaussian approximation of the interval).
CREATE OR REPLACE VIEW family_predictions AS
WITH pairs AS (
    SELECT
        rc.model,
        mm.metric,
        rc.dataset,
        rc.mean AS predicted,
        rc.sd,
        x.value AS observed
    FROM recommendations AS rc
    JOIN meta_models AS mm ON mm.model_id = rc.model_id
    JOIN runs AS r ON r.run_id = rc.run_id
    JOIN run_metrics AS x ON x.seq = r.seq AND x.name = mm.metric AND x.split = 'valid'
    WHERE rc.run_id IS NOT NULL AND rc.mean IS NOT NULL AND r.status = 'finished'
)
SELECT
    model,
    metric,
    count(*) AS n,
    count(DISTINCT dataset) AS n_datasets,
    avg(predicted) AS mean_predicted,
    avg(observed) AS mean_observed,
    avg(observed - predicted) AS bias,
    avg(abs(observed - predicted)) AS mae,
    sqrt(avg((observed - predicted) * (observed - predicted))) AS rmse,
    avg(CASE WHEN abs(observed - predicted) <= 1.645 * sd THEN 1.0 ELSE 0.0 END) AS coverage_90
FROM pairs
GROUP BY model, metric
