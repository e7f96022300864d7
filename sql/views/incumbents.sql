-- incumbents: the best finished run for each dataset x model family x metric x split.
-- Grain: one row per (dataset, model, metric, split) that has at least one finished run.
-- "Best" honours the metric's direction from the metrics table (maximize: highest value,
-- minimize: lowest); ties go to the earliest logged run. n_runs counts the finished runs
-- that reported the metric. It reads run_incumbents, which ingest keeps up to date in the
-- same transaction as every new batch (sql/schema/0002_incumbents.sql explains why); the
-- audit incumbents_stale recomputes the answer from the runs and must find no difference.
CREATE OR REPLACE VIEW incumbents AS
SELECT dataset, model, metric, split, direction, run_id, value, n_runs
FROM run_incumbents
