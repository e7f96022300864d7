"""Search spaces: parsing, validation errors, Sobol sampling, unit-cube round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from metaopt_bayes.space import SearchSpace
from warehouse.errors import ValidationError

SVC_YAML = """
params:
  C:      {type: float, low: 1.0e-3, high: 1.0e3, log: true}
  kernel: {type: categorical, choices: [rbf, poly, linear]}
  gamma:  {type: float, low: 1.0e-4, high: 1, log: true, condition: {kernel: [rbf, poly]}}
  degree: {type: int, low: 2, high: 5, condition: {kernel: poly}}
  width:  {type: int, low: 16, high: 256, log: true}
  shrinking: [true, false]
  max_iter: 1000
"""


@pytest.fixture
def svc_space(tmp_path) -> SearchSpace:
    p = tmp_path / "svc.yaml"
    p.write_text(SVC_YAML)
    return SearchSpace.from_file(p)


def test_yaml_json_and_python_forms_agree(svc_space, tmp_path):
    p = tmp_path / "svc.json"
    p.write_text(json.dumps(svc_space.to_dict()))
    again = SearchSpace.from_file(p)
    assert again.to_dict() == svc_space.to_dict()
    assert svc_space.names == ["C", "kernel", "gamma", "degree", "width", "shrinking", "max_iter"]
    assert svc_space.unit_names == ["C", "kernel", "gamma", "degree", "width", "shrinking"]
    kinds = {p.name: p.kind for p in svc_space.params}
    assert kinds["max_iter"] == "fixed" and kinds["shrinking"] == "categorical"
    assert svc_space["C"].log and svc_space["degree"].condition == {"kernel": ("poly",)}


def test_sample_is_deterministic_in_bounds_and_conditional(svc_space):
    df = svc_space.sample(64, seed=3)
    pd.testing.assert_frame_equal(df, svc_space.sample(64, seed=3))
    assert not df.equals(svc_space.sample(64, seed=4))
    assert df["C"].between(1e-3, 1e3).all()
    assert set(df["kernel"]) == {"rbf", "poly", "linear"}
    assert (df["max_iter"] == 1000).all()
    poly = df["kernel"] == "poly"
    assert df.loc[~poly, "degree"].isna().all()
    assert df.loc[poly, "degree"].between(2, 5).all()
    assert df.loc[df["kernel"] == "linear", "gamma"].isna().all()
    # log scale: about half of the draws below the geometric midpoint 1
    assert 0.3 < (df["C"] < 1).mean() < 0.7
    assert df["width"].between(16, 256).all()
    for rec in df.to_dict("records"):
        svc_space.validate({k: v for k, v in rec.items() if not pd.isna(v)})


def test_sobol_fills_the_cube_evenly():
    sp = SearchSpace.from_dict({"x": {"type": "float", "low": 0, "high": 1}})
    x = np.sort(sp.sample(256, seed=0)["x"].to_numpy())
    # a scrambled Sobol sequence puts exactly one of 256 points in each 1/256 cell
    assert np.array_equal(np.floor(x * 256), np.arange(256))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"a": {"type": "float", "low": 2, "high": 1}}, "parameter 'a': low 2 is greater"),
        ({"a": {"type": "float", "low": 0, "high": 1, "log": True}}, "'a': log scale needs"),
        ({"a": {"type": "int", "low": 0.5, "high": 3}}, "'a': int bounds"),
        ({"a": {"type": "bogus"}}, "'a': type must be one of"),
        ({"a": {"type": "categorical", "choices": []}}, "'a': categorical needs"),
        ({"a": ["x", "x"]}, "'a': choice 'x' is listed twice"),
        ({"a": {"low": 0, "high": 1, "colour": 2}}, "'a': unknown key"),
        ({"a": {"low": 1, "high": 9, "log": "maybe"}}, "'a': log must be true or false"),
        ({"a": {"low": 0, "high": 1, "condition": {"b": 1}}}, "unknown parameter 'b'"),
        (
            {"k": ["x", "y"], "a": {"low": 0, "high": 1, "condition": {"k": "z"}}},
            "'a': condition value 'z'",
        ),
        (
            {
                "a": {"type": "categorical", "choices": [1, 2], "condition": {"b": 1}},
                "b": {"type": "categorical", "choices": [1, 2], "condition": {"a": 1}},
            },
            "cycle",
        ),
    ],
)
def test_bad_spaces_name_the_parameter(spec, message):
    with pytest.raises(ValidationError, match=message):
        SearchSpace.from_dict(spec)


def test_bad_space_files(tmp_path):
    with pytest.raises(ValidationError, match="does not exist"):
        SearchSpace.from_file(tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("params: {a: [1, 2\n")
    with pytest.raises(ValidationError, match=r"cannot parse search space broken\.yaml"):
        SearchSpace.from_file(p)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"C": 1, "kernel": "sigmoid", "width": 20, "shrinking": True}, "'kernel': 'sigmoid'"),
        ({"C": 1e9, "kernel": "rbf", "gamma": 0.1, "width": 20, "shrinking": True}, "'C'"),
        ({"C": 1, "kernel": "rbf", "gamma": 0.1, "width": 20.5, "shrinking": True}, "'width'"),
        ({"C": 1, "kernel": "rbf", "width": 20, "shrinking": True}, "'gamma' is missing"),
        ({"C": 1, "kernel": "linear", "degree": 3, "width": 20, "shrinking": True}, "inactive"),
        ({"C": "big", "kernel": "linear", "width": 20, "shrinking": True}, "'C': expected"),
        ({"C": 1, "kernel": "linear", "width": 20, "shrinking": 1}, "'shrinking'"),
        ({"C": 1, "kernel": "linear", "width": 20, "shrinking": True, "max_iter": 5}, "fixed"),
        ({"C": 1, "kernel": "linear", "width": 20, "shrinking": True, "zzz": 1}, "'zzz'"),
    ],
)
def test_validate_names_the_parameter(svc_space, config, message):
    with pytest.raises(ValidationError, match=message):
        svc_space.validate(config)


def test_validate_completes_config(svc_space):
    cfg = svc_space.validate(
        {"C": 2, "kernel": "poly", "gamma": 0.5, "degree": 3.0, "width": 32, "shrinking": False}
    )
    assert cfg == {
        "C": 2.0,
        "kernel": "poly",
        "gamma": 0.5,
        "degree": 3,
        "width": 32,
        "shrinking": False,
        "max_iter": 1000,
    }
    assert isinstance(cfg["degree"], int)


def test_a_config_read_back_from_the_warehouse_gets_its_types_again(svc_space):
    # the warehouse keeps booleans as 1.0/0.0 and integers as floats; validation stays strict
    stored = {"C": 2.0, "kernel": "rbf", "gamma": 0.5, "width": 32.0, "shrinking": 0.0}
    with pytest.raises(ValidationError, match="shrinking"):
        svc_space.validate(stored)
    cfg = svc_space.validate(svc_space.restore({**stored, "max_iter": 1000.0}))
    assert cfg["shrinking"] is False and cfg["width"] == 32 and cfg["max_iter"] == 1000
    fixed = SearchSpace.from_dict({"x": {"type": "float", "low": 0, "high": 1}, "es": True})
    assert fixed.validate(fixed.restore({"x": 0.5, "es": 1.0}))["es"] is True
    assert fixed.restore({"es": "True", "other": 3}) == {"es": True, "other": 3}
    with pytest.raises(ValidationError, match="fixed to True"):
        fixed.validate(fixed.restore({"x": 0.5, "es": 0.0}))  # not the fixed value: refused
    ambiguous = SearchSpace.from_dict({"v": [0, False, "a"]})
    assert ambiguous.restore({"v": 0.0}) == {"v": 0.0}  # 0 matches as a number: kept as is


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.lists(hs.floats(0, 1), min_size=6, max_size=6), min_size=1, max_size=8))
def test_unit_round_trip_is_identity(rows):
    sp = SearchSpace.from_dict(SVC_YAML_DICT)
    df = sp.from_unit(np.array(rows))
    again = sp.from_unit(sp.to_unit(df))
    pd.testing.assert_frame_equal(again, df, check_exact=False, rtol=1e-9)
    u = sp.to_unit(df)
    assert ((u >= 0) & (u <= 1)).all()


SVC_YAML_DICT = __import__("yaml").safe_load(SVC_YAML)


def test_neighbors_stay_close_and_valid(svc_space):
    base = {"C": 1.0, "kernel": "rbf", "gamma": 0.01, "width": 64, "shrinking": True}
    nb = svc_space.neighbors(base, 50, scale=0.05, seed=1)
    assert len(nb) == 50
    assert nb["C"].between(1e-3, 1e3).all()
    # 5% of the log-range of C is a factor of ~2; nearly all stay within a factor of 10
    assert (np.abs(np.log10(nb["C"])) < 1).mean() > 0.95
    assert (nb["kernel"] == "rbf").mean() > 0.8
    wide = svc_space.neighbors(base, 50, scale=0.5, seed=1)
    assert np.abs(np.log10(wide["C"])).mean() > np.abs(np.log10(nb["C"])).mean()


def test_log_written_as_text_means_what_it_says():
    space = SearchSpace.from_dict(
        {"a": {"low": 1, "high": 9, "log": "false"}, "b": {"low": 1, "high": 9, "log": "true"}}
    )
    assert [p.log for p in space.params] == [False, True]
