-- 0004_meta_model_fingerprints: what a recorded meta-model (learner) was fitted on, so that
-- recommend / optimize / report / predict reuse a fit instead of refitting an identical one
-- (metaopt_bayes/reuse.py). settings_hash: a hash of the learner's settings (metric, model
-- family, direction, method, its config, what it was fitted to — the metric or the training
-- seconds of its runs — and the model-file format version). data_digest: a JSON object with
-- one content hash per training dataset (its runs' ids, values and parameters, and its
-- meta-features). A fit is reused when the settings hash is equal and every dataset other than
-- the target has the same digest (the target's own runs enter at predict time through the
-- few-shot update). Rows written before this migration have neither and are never reused
-- automatically (`--learner ID` still picks them). One row per fit, as before.
ALTER TABLE meta_models ADD COLUMN settings_hash VARCHAR;
ALTER TABLE meta_models ADD COLUMN data_digest JSON;
