-- recommendation_unknown_run: recommendations pointing at a run that does not exist.
-- Must return zero rows.
SELECT c.rec_id, c.run_id
FROM recommendations AS c
WHERE c.run_id IS NOT NULL AND c.run_id NOT IN (SELECT run_id FROM runs)
