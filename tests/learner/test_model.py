from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes.model import MetaLearner
from warehouse.errors import ValidationError


def test_import_is_lazy():
    import subprocess
    import sys

    code = "import metaopt_bayes, sys; metaopt_bayes.__version__; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fit_map_and_zero_shot_prediction(fitted_map, synth):
    runs, meta, _ = synth
    ml = fitted_map
    assert ml.is_fitted and ml.diagnostics["n_datasets"] == 7
    assert set(ml.param_names) == {"lr", "depth", "booster"}
    target = runs[runs["dataset"] == "ds7"]
    pred = ml.predict("ds7", target, meta=meta, runs=target.iloc[:0])
    assert list(pred.columns) == ["mean", "sd", "lower", "upper"]
    assert len(pred) == len(target)
    assert np.all((pred["lower"] < pred["mean"]) & (pred["mean"] < pred["upper"]))
    assert np.all((pred["lower"] > 0) & (pred["upper"] < 1))  # logit scale maps back into (0,1)
    rho = pd.Series(pred["mean"].to_numpy()).corr(
        pd.Series(target["value"].to_numpy()), method="spearman"
    )
    assert rho > 0.3  # the population surface transfers to an unseen dataset (random ≈ 0)


def test_few_shot_update_narrows_and_improves(fitted_map, synth):
    runs, meta, _ = synth
    target = runs[runs["dataset"] == "ds7"].reset_index(drop=True)
    obs, test = target.iloc[:15], target.iloc[15:]
    zero = fitted_map.predict("ds7", test, meta=meta, runs=target.iloc[:0])
    few = fitted_map.predict("ds7", test, meta=meta, runs=obs)
    assert few["sd"].mean() < zero["sd"].mean()
    err0 = np.abs(zero["mean"] - test["value"].to_numpy()).mean()
    err1 = np.abs(few["mean"] - test["value"].to_numpy()).mean()
    assert err1 < err0
    inside = (test["value"].to_numpy() >= few["lower"]) & (test["value"].to_numpy() <= few["upper"])
    assert inside.mean() >= 0.6


def test_missing_meta_features_do_not_drop_runs(synth):
    runs, meta, _ = synth
    meta = meta.copy()
    meta.loc[["ds0", "ds1"], :] = np.nan
    ml = MetaLearner("accuracy", method="map", interactions=False, quadratic=False)
    ml.fit_frame(runs[runs["dataset"].isin([f"ds{i}" for i in range(5)])], meta)
    assert ml.diagnostics["n_runs"] == 150
    assert ml.scaler.groups  # a missing-pattern indicator exists
    pred = ml.predict("never_seen", runs.head(3), meta=meta.iloc[:0], runs=runs.iloc[:0])
    assert np.all(np.isfinite(pred.to_numpy()))


def test_predict_draws_shape_scale_and_extra_runs(fitted_map, synth):
    runs, meta, _ = synth
    target = runs[runs["dataset"] == "ds7"].reset_index(drop=True)
    d0 = fitted_map.predict_draws("ds7", target.head(4), meta=meta, runs=target.iloc[:0])
    assert d0.shape == (fitted_map._draws["B"].shape[0], 4)
    assert np.all((d0 > 0) & (d0 < 1))
    extra = target.iloc[:20][["params.lr", "params.depth", "params.booster", "value"]]
    d1 = fitted_map.predict_draws(
        "ds7", target.head(4), meta=meta, runs=target.iloc[:0], extra_runs=extra, predictive=True
    )
    assert d1.shape == d0.shape


def test_fantasized_runs_keyed_by_name_stack_with_logged_runs(fitted_map, synth):
    # recommend --n and optimize --jobs fantasize pending configs keyed by parameter name
    # next to the runs read from the warehouse (params.<name>): every row keeps its config
    runs, meta, _ = synth
    target = runs[runs["dataset"] == "ds7"].reset_index(drop=True)
    logged, pool = target.iloc[:10], target.iloc[10:14].reset_index(drop=True)
    names = ["lr", "depth", "booster"]
    before = fitted_map.predict("ds7", pool, meta=meta, runs=logged, predictive=False)
    prefixed = pool[[f"params.{n}" for n in names]].iloc[[0]].assign(value=before["mean"].iloc[0])
    bare = prefixed.rename(columns=lambda c: c.removeprefix("params."))
    after = [
        fitted_map.predict("ds7", pool, meta=meta, runs=logged, extra_runs=x, predictive=False)
        for x in (bare, prefixed)
    ]
    pd.testing.assert_frame_equal(after[0], after[1])
    # believing a config returns its predicted mean: that config narrows, nothing else moves
    assert after[0]["sd"].iloc[0] < before["sd"].iloc[0]
    np.testing.assert_allclose(after[0]["mean"], before["mean"], atol=0.25 * before["sd"].min())


def test_duration_target_uses_log(synth):
    runs, meta, _ = synth
    ml = MetaLearner("duration_s", direction=None, method="map", interactions=False)
    r = runs.copy()
    r["value"] = np.nan
    ml.fit_frame(r[r["dataset"].isin(["ds0", "ds1", "ds2"])], meta)
    assert ml.transform.kind == "log" and ml.direction == "minimize"
    pred = ml.predict("ds0", r.head(5), meta=meta, runs=r[r["dataset"] == "ds0"])
    assert np.all(pred["lower"] > 0)


def test_save_load_roundtrip_and_refusals(fitted_map, synth, tmp_path):
    runs, meta, _ = synth
    path = fitted_map.save(tmp_path / "m.nc")
    back = MetaLearner.load(path)
    target = runs[runs["dataset"] == "ds7"].head(6)
    a = fitted_map.predict("ds7", target, meta=meta, runs=target.iloc[:3])
    b = back.predict("ds7", target, meta=meta, runs=target.iloc[:3])
    pd.testing.assert_frame_equal(a, b)
    assert back.config_hash() == fitted_map.config_hash()
    assert back.portfolio == fitted_map.portfolio
    np.testing.assert_allclose(back.discrepancy_prior, fitted_map.discrepancy_prior)
    np.testing.assert_allclose(back.sensitivity_prior, fitted_map.sensitivity_prior)
    with pytest.raises(ValidationError, match="metric"):
        MetaLearner.load(path, metric="rmse")
    # tamper with the stored config: the hash no longer matches
    import xarray as xr

    with xr.open_dataset(path) as f:
        ds = f.load()
    cfg = json.loads(ds.attrs["config"])
    cfg["prior_tau"] = 9.0
    ds.attrs["config"] = json.dumps(cfg, sort_keys=True)
    ds.to_netcdf(tmp_path / "bad.nc")
    with pytest.raises(ValidationError, match="hash mismatch"):
        MetaLearner.load(tmp_path / "bad.nc")
    xr.Dataset({"x": ("a", [1.0])}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(ValidationError, match="not a metaopt model"):
        MetaLearner.load(tmp_path / "other.nc")


def test_bad_inputs_are_one_line_errors(synth):
    runs, meta, _ = synth
    with pytest.raises(ValidationError, match="unknown method"):
        MetaLearner("accuracy", method="gibbs")
    with pytest.raises(ValidationError, match="no finished runs"):
        MetaLearner("accuracy", method="map").fit_frame(runs.iloc[:0], meta)
    two = runs.copy()
    two.loc[two.index[:5], "model"] = "other"
    with pytest.raises(ValidationError, match="several model families"):
        MetaLearner("accuracy", method="map").fit_frame(two, meta)
    with pytest.raises(ValidationError, match="not fitted"):
        MetaLearner("accuracy").predict("ds0", runs.head(1))


@pytest.mark.slow
def test_nuts_parameter_recovery():
    from tests.learner.conftest import make_hierarchical

    runs, meta, _truth = make_hierarchical(n_datasets=10, n_runs=40, seed=5, noise=0.1)
    ml = MetaLearner("accuracy", method="nuts", draws=300, tune=300, interactions=False)
    ml.fit_frame(runs, meta)
    assert ml.diagnostics["max_rhat"] < 1.05
    # true noise on the logit scale is 0.1: recovered per-dataset σ (on the original logit
    # scale) should be near it
    sig = np.exp(ml._draws["log_sigma"]).mean(0) * ml.transform.scale
    assert np.all((sig > 0.05) & (sig < 0.2))


@pytest.mark.slow
def test_nuts_nutpie_numba_compiles_and_samples_cleanly():
    from tests.learner.conftest import make_hierarchical

    runs, meta, _ = make_hierarchical(n_datasets=3, n_runs=12, seed=1)
    ml = MetaLearner("accuracy", method="nuts", sampler="nutpie", interactions=False)
    ml.fit_frame(runs, meta)
    d = ml.diagnostics
    assert d["compile_s"] < 120 and d["sample_s"] < 60  # numba, not the object-mode fallback
    assert d["n_divergences"] <= 10 and d["max_rhat"] < 1.05


def test_meta_terms_choose_which_population_means_use_meta_features(synth):
    runs, meta, _ = synth
    n_lin = None
    for terms in ("intercept", "linear", "all"):
        ml = MetaLearner("accuracy", method="map", meta_terms=terms).fit_frame(runs, meta)
        Bz = ml._draws["B"][:, :, 1:]  # (draw, basis, meta) coefficients on the meta-features
        n_lin = 1 + len(ml.encoder._linear)
        uses = np.abs(Bz).sum(axis=(0, 2)) > 0
        expected = {
            "intercept": np.arange(len(uses)) < 1,
            "linear": np.arange(len(uses)) < n_lin,
            "all": np.ones(len(uses), dtype=bool),
        }[terms]
        np.testing.assert_array_equal(uses, expected)
    with pytest.raises(ValidationError, match="meta_terms"):
        MetaLearner("accuracy", meta_terms="quadratic")


def test_portfolio_is_each_training_datasets_best_config(fitted_map, synth):
    runs, _, _ = synth
    train = runs[runs["dataset"] != "ds7"]
    best = train.loc[train.groupby("dataset")["value"].idxmax()].sort_values("dataset")
    assert len(fitted_map.portfolio) == best["dataset"].nunique() == 7
    for cfg, (_, row) in zip(fitted_map.portfolio, best.iterrows(), strict=True):
        assert cfg == {
            "lr": row["params.lr"],
            "depth": row["params.depth"],
            "booster": row["params.booster"],
        }
    # a metric to minimize: the lowest value is each dataset's best
    low = MetaLearner("log_loss", direction="minimize", method="map", interactions=False).fit_frame(
        train.assign(value=1 - train["value"])
    )
    assert low.portfolio == fitted_map.portfolio


@pytest.mark.parametrize(
    ("fmt", "absent"), [(1, ("discrepancy", "sensitivity")), (2, ("sensitivity",))]
)
def test_a_model_saved_before_an_option_loads_without_it(fitted_map, synth, tmp_path, fmt, absent):
    """A format-1 file (no discrepancy, no sensitivity) and a format-2 file (no sensitivity)
    predict as the model did then: exactly the predictions with those options switched off."""
    import hashlib
    import json

    import xarray as xr

    from metaopt_bayes.model import MetaLearner

    runs, meta, _ = synth
    path = fitted_map.save(tmp_path / "new.nc")
    with xr.open_dataset(path) as f:
        ds = f.load()
    cfg = json.loads(ds.attrs["config"])
    for option in absent:
        del cfg[option]
        del ds.attrs[f"{option}_prior"]
    blob = json.dumps(cfg, sort_keys=True)
    ds.attrs.update(
        config=blob,
        config_hash=hashlib.sha256(blob.encode()).hexdigest()[:16],
        metaopt_format=fmt,
    )
    ds.to_netcdf(tmp_path / "old.nc")
    old = MetaLearner.load(tmp_path / "old.nc")
    for option in absent:
        assert old.config[option] is False and getattr(old, f"{option}_prior") is None
    target = runs[runs["dataset"] == "ds7"].head(8)
    before = dict(fitted_map.config)
    try:
        fitted_map.config.update({option: False for option in absent})
        expected = fitted_map.predict("ds7", target, meta=meta, runs=target.iloc[:5])
    finally:
        fitted_map.config.update(before)
    got = old.predict("ds7", target, meta=meta, runs=target.iloc[:5])
    pd.testing.assert_frame_equal(got, expected)


def test_a_format_3_model_uses_the_sensitivity_grid_it_was_fitted_on(fitted_map, synth, tmp_path):
    """Format-3 files do not store their sensitivity grid: they load with the 7-point grid
    (λ = 1/16 … 4) they were fitted on, and predict as a model with that grid and weights."""
    import xarray as xr

    runs, meta, _ = synth
    path = fitted_map.save(tmp_path / "new.nc")
    with xr.open_dataset(path) as f:
        ds = f.load()
    old_grid = 2.0 ** np.arange(-4, 3)
    weights = np.arange(1.0, 8.0) / 28.0
    del ds.attrs["sensitivity_grid"]
    ds.attrs.update(sensitivity_prior=json.dumps(list(weights)), metaopt_format=3)
    ds.to_netcdf(tmp_path / "v3.nc")
    old = MetaLearner.load(tmp_path / "v3.nc")
    np.testing.assert_array_equal(old.sensitivity_grid, old_grid)
    target = runs[runs["dataset"] == "ds7"].head(8)
    saved = fitted_map.sensitivity_grid, fitted_map.sensitivity_prior
    try:
        fitted_map.sensitivity_grid, fitted_map.sensitivity_prior = old_grid, weights
        expected = fitted_map.predict("ds7", target, meta=meta, runs=target.iloc[:5])
    finally:
        fitted_map.sensitivity_grid, fitted_map.sensitivity_prior = saved
    got = old.predict("ds7", target, meta=meta, runs=target.iloc[:5])
    pd.testing.assert_frame_equal(got, expected)
    # and a format-4 round trip keeps the grid
    assert len(MetaLearner.load(path).sensitivity_grid) == len(fitted_map.sensitivity_prior)


def test_a_file_whose_sensitivity_weights_do_not_fit_its_grid_is_refused(fitted_map, tmp_path):
    import xarray as xr

    path = fitted_map.save(tmp_path / "m.nc")
    with xr.open_dataset(path) as f:
        ds = f.load()
    ds.attrs["sensitivity_grid"] = json.dumps([0.5, 1.0, 2.0])
    ds.to_netcdf(tmp_path / "bad.nc")
    with pytest.raises(ValidationError, match="sensitivity weights for a grid of 3 points"):
        MetaLearner.load(tmp_path / "bad.nc")


def test_direction_follows_the_warehouse_then_the_metric_name(wh_memory):
    from tests.conftest import tiny_history_frame
    from warehouse.importers import _register_metric

    assert MetaLearner("log_loss").direction == "minimize"
    assert MetaLearner("accuracy").direction == "maximize"
    assert MetaLearner("log_loss", direction="maximize").direction == "maximize"
    # "score" sounds maximized, but an Optuna import registered it as minimized
    _register_metric(wh_memory, "score", "minimize", "study")
    runs = tiny_history_frame().rename(columns={"metrics.accuracy": "metrics.score"})
    wh_memory.log_runs(runs)
    assert wh_memory.metric_direction("score") == "minimize"
    assert wh_memory.metric_direction("peak_mem_mb") == "minimize"
    ml = MetaLearner("score", model="rf", method="map", discrepancy=False)
    assert ml.direction == "maximize"  # before the fit: from the name
    assert ml.fit(wh_memory).direction == "minimize"
    assert MetaLearner("score", "rf", "maximize", "map").fit(wh_memory).direction == "maximize"


def test_predict_checks_configs_typed_as_dicts(fitted_map, synth):
    runs, meta, _ = synth
    ok = fitted_map.predict("ds1", {"lr": 0.01, "depth": 3}, meta=meta, runs=runs.iloc[:0])
    assert len(ok) == 1
    with pytest.raises(ValidationError, match="unknown parameter 'dpeth'"):
        fitted_map.predict("ds1", {"lr": 0.01, "dpeth": 3}, meta=meta, runs=runs.iloc[:0])
    with pytest.raises(ValidationError, match="booster='gbtre' is not a value"):
        fitted_map.predict("ds1", [{"booster": "gbtre"}], meta=meta, runs=runs.iloc[:0])
    with pytest.raises(ValidationError, match="interval must be between 0 and 1"):
        fitted_map.predict("ds1", {"lr": 0.01}, meta=meta, runs=runs.iloc[:0], interval=1.5)
    # a runs frame carries other columns (dataset, value, …): they are ignored
    assert len(fitted_map.predict("ds1", runs.head(3), meta=meta, runs=runs.iloc[:0])) == 3


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"draws": -1}, "draws must be an integer >= 1"),
        ({"chains": 0}, "chains must be an integer >= 1"),
        ({"tune": 1.5}, "tune must be an integer >= 0"),
        ({"target_accept": 1.2}, "target_accept must be in"),
        ({"transform": "logg"}, "transform must be logit, log, identity or None"),
        ({"sampler": "stan"}, "sampler must be nutpie or pymc"),
        ({"drwas": 10}, "unknown MetaLearner option 'drwas'"),
    ],
)
def test_bad_options_are_refused_at_construction(option, message):
    with pytest.raises(ValidationError, match=message):
        MetaLearner("accuracy", **option)


def test_typed_configs_may_name_constant_parameters_and_prediction_columns(synth):
    runs, meta, _ = synth
    train = runs[runs["dataset"].isin(["ds0", "ds1", "ds2"])].assign(**{"params.max_iter": 2e4})
    ml = MetaLearner("accuracy", method="map", interactions=False).fit_frame(train, meta)
    assert "max_iter" not in ml.encoder.param_names  # it never varied: not in the basis
    typed = {"lr": 0.01, "depth": 3, "max_iter": 20000, "mean": 0.9, "rank": 1}
    assert len(ml.predict("ds1", typed, meta=meta, runs=runs.iloc[:0])) == 1
    with pytest.raises(ValidationError, match="unknown parameter 'max_itre'"):
        ml.predict("ds1", {"lr": 0.01, "max_itre": 20000}, meta=meta, runs=runs.iloc[:0])


def test_a_loss_of_zero_on_a_log_scale_is_taken_not_refused(synth):
    # a custom objective reached a loss of exactly 0 where the history was all positive
    runs, meta, _ = synth
    loss = runs.assign(value=1.5 - np.log(runs["value"]))  # positive, above 1: a log scale
    ml = MetaLearner("val_loss", direction="minimize", method="map", interactions=False)
    ml.fit_frame(loss[loss["dataset"] != "ds7"], meta)
    assert ml.transform.kind == "log"
    target = loss[loss["dataset"] == "ds7"].reset_index(drop=True)
    seen = target.iloc[:6].copy()
    seen.loc[0, "value"] = 0.0
    pred = ml.predict("ds7", target.iloc[6:10], meta=meta, runs=seen)
    assert np.isfinite(pred.to_numpy(float)).all() and (pred["mean"] > 0).all()
    seen.loc[0, "value"] = -0.1
    with pytest.raises(ValidationError, match="transform='identity'"):
        ml.predict("ds7", target.iloc[6:10], meta=meta, runs=seen)
    # a spread of 60 log units (a zero-shot RMSE whose level is the target's unit): the
    # moments in metric units overflowed to NaN and broke the batch's acquisition
    out = ml._summarize(np.array([0.0, 0.0]), np.array([0.5, 60.0 / ml.transform.scale]), 0.9)
    assert np.isfinite(out[["mean", "sd"]].to_numpy()).all() and out["sd"].iloc[1] > 1e100


def test_history_regret_is_each_training_datasets_own_surface(fitted_map, synth, tmp_path):
    """history_regret scores candidates on each training dataset separately: the synthetic
    datasets' best learning rate moves with their size, and each dataset's zero-regret
    candidate lies near its own optimum, not the population's. It survives a save/load; a
    file without it (before format 9) gives None."""
    import xarray as xr

    _, _, truth = synth
    grid = pd.DataFrame({"lr": 10 ** np.linspace(-4, 0, 41), "depth": 6.0, "booster": "dart"})
    R = fitted_map.history_regret(grid)
    assert R.shape == (len(fitted_map.datasets), len(grid))
    assert np.all((R >= 0) & (R <= 1)) and np.allclose(R.min(axis=1), 0.0)
    best = np.log10(grid["lr"].to_numpy()[R.argmin(axis=1)])
    opts = np.array([truth[d][1] for d in fitted_map.datasets])
    assert np.max(np.abs(best - opts)) < 0.6
    assert np.ptp(opts) > 1.0  # the optima differ, so one population surface could not pass
    path = fitted_map.save(tmp_path / "h.nc")
    assert np.allclose(MetaLearner.load(path).history_regret(grid), R)
    with xr.open_dataset(path) as f:
        ds = f.load()
    old = ds.drop_vars(["history_coefs", "history_U", "history_V", "history_n"])
    old.to_netcdf(tmp_path / "old.nc")
    assert MetaLearner.load(tmp_path / "old.nc").history_regret(grid) is None


def test_remembered_states_predict_as_fresh_and_follow_new_runs(fitted_map, synth):
    """A search step predicts the same dataset state several times, so the posterior given
    the runs is remembered by content: the same inputs give the same predictions as a fresh
    copy of the learner, one more run gives a new state, and the learner still pickles."""
    import pickle

    runs, meta, _ = synth
    target = runs[runs["dataset"] == "ds7"].reset_index(drop=True)
    pool = target.iloc[10:]
    first = fitted_map.predict("ds7", pool, meta=meta, runs=target.iloc[:5])
    again = fitted_map.predict("ds7", pool, meta=meta, runs=target.iloc[:5].copy())
    fresh = pickle.loads(pickle.dumps(fitted_map))  # pickled without the remembered states
    assert len(fresh._memo[1]) == 0
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(
        first, fresh.predict("ds7", pool, meta=meta, runs=target.iloc[:5])
    )
    m, _, _ = fitted_map.latent("ds7", pool, meta=meta, runs=target.iloc[:5])
    m -= 10.0  # a caller's own array: the remembered state must not see it
    pd.testing.assert_frame_equal(
        first, fitted_map.predict("ds7", pool, meta=meta, runs=target.iloc[:5])
    )
    more = fitted_map.predict("ds7", pool, meta=meta, runs=target.iloc[:6])
    assert not np.allclose(more["mean"], first["mean"])
    pd.testing.assert_frame_equal(more, fresh.predict("ds7", pool, meta=meta, runs=target.iloc[:6]))
