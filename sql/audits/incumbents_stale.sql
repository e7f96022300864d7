-- incumbents_stale: groups where the maintained run_incumbents table disagrees with the best
-- finished run recomputed from run_metrics (missing, extra, other run, value or count).
-- Must return zero rows.
WITH scored AS (
    SELECT
        r.dataset,
        r.model,
        x.name AS metric,
        x.split,
        CASE WHEN m.direction = 'minimize' THEN -x.value ELSE x.value END AS score,
        x.value,
        x.seq
    FROM run_metrics AS x
    JOIN runs AS r ON r.seq = x.seq
    LEFT JOIN metrics AS m ON m.name = x.name
    WHERE r.status = 'finished'
),
fresh AS (
    SELECT
        dataset, model, metric, split,
        arg_max(seq, struct_pack(s := score, o := -seq)) AS seq,
        arg_max(value, struct_pack(s := score, o := -seq)) AS value,
        count(*) AS n_runs
    FROM scored
    GROUP BY dataset, model, metric, split
)
SELECT
    coalesce(f.dataset, i.dataset) AS dataset,
    coalesce(f.model, i.model) AS model,
    coalesce(f.metric, i.metric) AS metric,
    coalesce(f.split, i.split) AS split,
    f.seq AS expected_seq,
    i.seq AS stored_seq
FROM fresh AS f
FULL OUTER JOIN run_incumbents AS i
    ON i.dataset = f.dataset AND i.model = f.model AND i.metric = f.metric AND i.split = f.split
WHERE f.seq IS DISTINCT FROM i.seq
   OR f.value IS DISTINCT FROM i.value
   OR f.n_runs IS DISTINCT FROM i.n_runs
