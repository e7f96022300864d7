-- runs_without_dataset: runs whose dataset is not in the datasets table (runs.dataset has
-- no FOREIGN KEY for ingest speed; see 0001_core.sql). Must return zero rows.
SELECT r.run_id, r.dataset FROM runs AS r ANTI JOIN datasets AS d ON d.name = r.dataset
