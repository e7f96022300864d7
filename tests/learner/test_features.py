from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes.features import (
    FeatureEncoder,
    MetaFeatureScaler,
    TargetTransform,
    infer_param_specs,
)
from warehouse.errors import ValidationError


def _runs():
    return pd.DataFrame(
        {
            "params.lr": [1e-4, 1e-3, 1e-2, 1e-1],
            "params.depth": [1.0, 2.0, None, 8.0],
            "params.frac": [0.1, 0.5, 0.7, 0.9],
            "params.flag": [True, False, True, False],
            "params.kind": ["a", "b", "a", "c"],
            "params.const": [100.0] * 4,
            "params.depth_txt": ["None", "3", "4", "5"],
        }
    )


def test_kinds_and_scales_are_inferred():
    specs = {s.name: s for s in infer_param_specs(_runs())}
    assert specs["lr"].kind == "numeric" and specs["lr"].log
    assert specs["depth"].kind == "int" and specs["depth"].nullable and not specs["depth"].log
    assert specs["frac"].kind == "numeric" and not specs["frac"].log
    assert specs["flag"].kind == "bool"
    assert specs["kind"].kind == "categorical" and specs["kind"].levels[0] == "a"
    assert "const" not in specs  # never varies → no information
    assert specs["depth_txt"].kind == "int" and specs["depth_txt"].nullable  # "None" = unset


def test_space_overrides_inference():
    space = {"frac": {"type": "float", "low": 0.01, "high": 1.0, "log": True}}
    specs = {s.name: s for s in infer_param_specs(_runs(), space=space)}
    assert specs["frac"].log and specs["frac"].low == pytest.approx(-2.0)


def test_encoder_basis_and_roundtrip():
    enc = FeatureEncoder.fit(_runs())
    X = enc.transform(_runs())
    assert X.shape == (4, len(enc.names))
    assert np.all(X[:, 0] == 1.0)
    lr = X[:, enc.names.index("lr")]
    np.testing.assert_allclose(lr, [-1, -1 / 3, 1 / 3, 1])  # log10 scale mapped to [-1, 1]
    assert X[2, enc.names.index("depth[unset]")] == 1.0
    assert "lr^2" in enc.names and "lr*frac" in enc.names
    enc2 = FeatureEncoder.from_dict(enc.to_dict())
    np.testing.assert_array_equal(enc2.transform(_runs()), X)
    # configs keyed without the prefix encode identically; unknown level → baseline
    cfg = pd.DataFrame(
        {
            "lr": [1e-4],
            "depth": [1.0],
            "frac": [0.1],
            "flag": [True],
            "kind": ["zzz"],
            "depth_txt": [None],
        }
    )
    row = enc.transform(cfg)[0]
    assert row[enc.names.index("kind[b]")] == 0 and row[enc.names.index("kind[c]")] == 0


def test_encoder_refuses_bad_value_with_row_and_name():
    enc = FeatureEncoder.fit(_runs())
    bad = pd.DataFrame({"lr": [1e-3, -1.0]})
    with pytest.raises(ValidationError, match=r"row 1.*'lr'"):
        enc.transform(bad)
    with pytest.raises(ValidationError, match=r"row 0.*'frac'"):
        enc.transform(pd.DataFrame({"frac": ["lots"]}))


def test_meta_scaler_missing_indicators_are_grouped():
    meta = pd.DataFrame(
        {"n": [100.0, 1e4, np.nan, 1e6], "f": [1.0, 2.0, np.nan, 3.0], "g": [1.0, np.nan, 2, 4]},
        index=["a", "b", "c", "d"],
    )
    sc = MetaFeatureScaler.fit(meta, ["a", "b", "c", "d"])
    assert sc.log[sc.columns.index("n")]  # heavy-tailed count → log1p
    assert len(sc.groups) == 2  # n and f go missing together → one indicator
    Z = sc.transform(meta, ["a", "c", "unknown"])
    assert Z.shape == (3, 1 + 3 + 2)
    assert np.all(Z[:, 0] == 1)
    assert np.all(Z[1, 1:4][:2] == 0) and Z[1, 4] == 1  # c: imputed 0, indicator set
    assert np.all(Z[2, 1:4] == 0) and np.all(Z[2, 4:] == 1)  # unseen dataset: all missing


def test_target_transform():
    t = TargetTransform.fit(np.array([0.5, 0.9, 0.99]), "accuracy")
    assert t.kind == "logit"
    np.testing.assert_allclose(t.inverse(t.forward(np.array([0.7]))), [0.7])
    assert TargetTransform.fit(np.array([1.0, 50.0]), "duration_s").kind == "log"
    assert TargetTransform.fit(np.array([-1.0, 50.0]), "r2").kind == "identity"
    with pytest.raises(ValidationError, match="row 1"):
        t.check(np.array([0.5, 1.5]), "run")


def test_logit_moves_a_perfect_score_in_by_the_datasets_resolution():
    # accuracy on 556 rows moves in steps of 1/556: a perfect run sits half a step above the
    # best imperfect one, not ~3 logits above it as at a fixed 1 - 1e-4
    y = np.array([1.0, 1 - 1 / 556, 1 - 2 / 556, 1 - 5 / 556])
    t = TargetTransform.fit(y, "accuracy")
    g = t._g(y)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(g[0], logit(1 - 0.5 / 556), rtol=1e-6)
    np.testing.assert_allclose(g[1:], logit(y[1:]))  # interior values are untouched
    assert g[0] - g[1] < 0.8 and logit(1 - 1e-4) - g[1] > 2.5
    # each dataset has its own grain; a zero is moved in the same way
    g2 = t._g(np.array([1.0, 0.99, 0.0, 0.5, 0.25]), np.array(["a", "a", "b", "b", "b"]))
    np.testing.assert_allclose(g2[[0, 2]], [logit(1 - 0.005), logit(0.01)])
    # a dataset with one distinct value, a very fine grain, a coarse one: within [eps, eps_max]
    assert t.bound_eps(np.array([1.0, 1.0]))[0] == t.eps
    assert t.bound_eps(np.array([1.0, 1 - 1e-6]))[0] == t.eps
    assert t.bound_eps(np.array([1.0, 0.5]))[0] == t.eps_max


def test_transforms_of_older_files_keep_the_fixed_clip():
    old = {"kind": "logit", "center": 0.0, "scale": 1.0, "eps": 1e-4}  # format ≤ 4
    t = TargetTransform.from_dict(old)
    assert not t.resolution
    np.testing.assert_allclose(t._g(np.array([1.0, 0.99])), np.log([(1 - 1e-4) / 1e-4, 99.0]))
    assert TargetTransform.from_dict(TargetTransform.fit(np.array([0.5, 1.0])).to_dict()).resolution


def test_encoder_ties_indicators_identical_on_training_runs():
    # lr and depth are only ever unset together, and kind=b exactly when they are: the data
    # identify one summed effect, so the three 0/1 columns become one averaged column
    runs = pd.DataFrame(
        {
            "params.lr": [1e-3, None, 1e-2, None, 1e-1],
            "params.depth": [3.0, None, 5.0, None, 9.0],
            "params.kind": ["a", "b", "a", "b", "a"],
            "params.frac": [0.1, 0.2, None, 0.4, 0.5],
        }
    )
    enc = FeatureEncoder.fit(runs)
    tied = "mean(lr[unset], depth[unset], kind[b])"
    assert enc.ties == [["lr[unset]", "depth[unset]", "kind[b]"]]
    assert tied in enc.names and "lr[unset]" not in enc.names and "frac[unset]" in enc.names
    X = enc.transform(runs)
    lin = enc.linear_terms(X)
    assert len({lin[:, j].tobytes() for j in range(lin.shape[1])}) == lin.shape[1]
    np.testing.assert_array_equal(X[:, enc.names.index(tied)], [0, 1, 0, 1, 0])
    # a new config where only one of them holds gets its share of the effect
    one = enc.transform(pd.DataFrame({"lr": [None], "depth": [4.0], "kind": ["a"]}))[0]
    assert one[enc.names.index(tied)] == pytest.approx(1 / 3)
    back = FeatureEncoder.from_dict(enc.to_dict())
    assert back.names == enc.names
    np.testing.assert_array_equal(back.transform(runs), X)
    with pytest.raises(ValidationError, match="'lr' is not a 0/1 column"):
        FeatureEncoder(enc.specs, ties=[["lr", "frac[unset]"]])


def test_space_choices_match_the_values_read_back_from_the_warehouse():
    # ints come back as floats and booleans as 0/1: the space's levels must still match them
    runs = pd.DataFrame(
        {"params.n": [100.0, 200.0, 100.0, 200.0], "params.b": [1.0, 0.0, 0.0, 1.0]}
    )
    space = {
        "n": {"type": "categorical", "choices": [100, 200]},
        "b": {"type": "categorical", "choices": [True, False]},
    }
    enc = FeatureEncoder.fit(runs, space=space, quadratic=False, interactions=False)
    kinds = {s.name: s.kind for s in enc.specs}
    assert kinds == {"n": "categorical", "b": "bool"}
    phi = enc.transform(pd.DataFrame({"n": [100, 200], "b": [True, False]}))
    lin = dict(zip(enc.names, phi.T, strict=True))
    assert list(lin["n[200.0]"]) == [0.0, 1.0]
    enc.check(pd.DataFrame({"n": [200], "b": [True]}))  # typed as ints and bools: accepted


def test_a_parameter_named_like_a_run_column_is_read_from_its_params_column():
    # an Optuna study tuning "model" (a backbone name) next to the run's own model column
    runs = pd.DataFrame(
        {
            "model": ["tuner"] * 4,
            "value": [0.1, 0.2, 0.3, 0.4],
            "params.model": ["vit", "resnet", "vit", "resnet"],
            "params.lr": [0.1, 0.01, 0.001, 0.1],
        }
    )
    enc = FeatureEncoder.fit(runs, quadratic=False, interactions=False)
    X = enc.transform(runs)
    col = [i for i, n in enumerate(enc.names) if "model" in n and "vit" in n]
    assert col and X[:, col[0]].tolist() == [1.0, 0.0, 1.0, 0.0]
    typed = enc.transform(pd.DataFrame({"model": ["vit"], "lr": [0.1]}))  # a config by name
    assert typed[0, col[0]] == 1.0
