-- run_finished_before_started: runs whose finish time precedes their start time.
-- Must return zero rows.
SELECT run_id, started_at, finished_at FROM runs WHERE finished_at < started_at
