-- 0003_run_sources: one spelling of a run's source, <origin>:<detail>, as ingest:<path>,
-- mlflow:<experiment> and optuna:<study> already were. The runs metaopt trains itself are
-- metaopt:sweep, metaopt:optimize (the trials a re-run of optimize resumes), metaopt:final
-- (a retrained winner), metaopt:example and metaopt:train (trainer.train_and_evaluate);
-- warehouse/sources.py names them. This migration rewrites, in place, the spellings written
-- before it: metaopt.sweep, metaopt-optimize, metaopt-final, 'metaopt example' and a bare
-- 'metaopt'. No new object; runs keep their ids, and every other source is left as it is.
UPDATE runs
SET source = CASE source
    WHEN 'metaopt.sweep' THEN 'metaopt:sweep'
    WHEN 'metaopt-optimize' THEN 'metaopt:optimize'
    WHEN 'metaopt-final' THEN 'metaopt:final'
    WHEN 'metaopt example' THEN 'metaopt:example'
    WHEN 'metaopt' THEN 'metaopt:train'
END
WHERE source IN (
    'metaopt.sweep', 'metaopt-optimize', 'metaopt-final', 'metaopt example', 'metaopt'
);
