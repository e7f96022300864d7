-- dataset_features: each dataset's description and meta-features.
-- Grain: one row per dataset (registered, or created by ingesting its runs).
-- meta_features is a MAP(name -> value), NULL when none were logged; n_runs counts runs
-- of any status, n_finished only finished ones.
CREATE OR REPLACE VIEW dataset_features AS
SELECT
    d.name AS dataset,
    d.task,
    d.target,
    d.source,
    d.n_rows,
    d.n_features,
    d.n_classes,
    d.content_hash,
    d.created_at,
    (SELECT count(*) FROM runs AS r WHERE r.dataset = d.name) AS n_runs,
    (
        SELECT count(*) FROM runs AS r WHERE r.dataset = d.name AND r.status = 'finished'
    ) AS n_finished,
    (
        SELECT count(*) FROM dataset_meta_features AS m WHERE m.dataset = d.name
    ) AS n_meta_features,
    (
        SELECT map(list(m.name ORDER BY m.name), list(m.value ORDER BY m.name))
        FROM dataset_meta_features AS m
        WHERE m.dataset = d.name
    ) AS meta_features
FROM datasets AS d
