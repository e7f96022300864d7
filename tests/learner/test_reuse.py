"""Fits are reused (metaopt_bayes.reuse.learner_for): the recorded fit serves while the runs on
datasets other than the target are unchanged; a new run on another dataset calls for a refit,
one on the target does not. Counted by the fits recorded in the warehouse, not by timing."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from metaopt_bayes.persistence import training_digest
from metaopt_bayes.reuse import learner_for, matches
from tests.learner.conftest import make_hierarchical
from warehouse import Warehouse
from warehouse.errors import NotFoundError, ValidationError

FAST = {"method": "map", "interactions": False}


@pytest.fixture
def wh(tmp_path):
    runs, meta, _ = make_hierarchical(n_datasets=4, n_runs=15, seed=3)
    mlflow = runs.drop(columns=["value", "seq"]).assign(**{"metrics.accuracy": runs["value"]})
    with Warehouse(tmp_path / "wh.duckdb") as w:
        w.log_runs(mlflow)
        w.log_dataset_meta_features(meta.rename_axis("dataset").reset_index())
        yield w


def _fits(w: Warehouse) -> int:
    return len(w.meta_models())


def _run(w: Warehouse, dataset: str, lr: float = 0.01) -> None:
    w.log_run(dataset, "gbm", {"lr": lr, "depth": 3.0, "booster": "dart"}, {"accuracy": 0.7})


def test_a_second_call_reuses_the_recorded_fit(wh):
    first = learner_for(wh, "accuracy", "gbm", dataset="ds0", **FAST)
    assert not first.reused and first.reuse_note.startswith("fitted learner ")
    row = wh.meta_models().iloc[0]
    assert row.path and row.settings_hash == first.settings_hash
    assert json.loads(row.data_digest) == first.data_digest and len(first.data_digest) == 4
    again = learner_for(wh, "accuracy", "gbm", dataset="ds0", **FAST)
    assert again.reused and again.model_id == first.model_id and _fits(wh) == 1
    assert again.reuse_note.startswith(f"using learner {first.model_id[:12]} (") and (
        "60 runs on 4 datasets, unchanged)" in again.reuse_note
    )
    configs = pd.DataFrame({"lr": [1e-3, 1e-2], "depth": [2.0, 4.0], "booster": ["dart"] * 2})
    pd.testing.assert_frame_equal(
        again.predict("ds0", configs, warehouse=wh), first.predict("ds0", configs, warehouse=wh)
    )


def test_runs_on_the_target_do_not_refit_runs_elsewhere_do(wh):
    first = learner_for(wh, "accuracy", "gbm", dataset="ds0", **FAST)
    cfg = pd.DataFrame({"lr": [0.01], "depth": [3.0], "booster": ["dart"]})
    before = first.predict("ds0", cfg, warehouse=wh)
    _run(wh, "ds0")
    same = learner_for(wh, "accuracy", "gbm", dataset="ds0", **FAST)
    assert same.model_id == first.model_id and _fits(wh) == 1
    # the target's new run reaches the prediction through the few-shot update
    assert same.predict("ds0", cfg, warehouse=wh)["mean"][0] != before["mean"][0]
    _run(wh, "ds1")
    new = learner_for(wh, "accuracy", "gbm", dataset="ds0", **FAST)
    assert not new.reused and new.model_id != first.model_id and _fits(wh) == 2
    assert "'ds1' changed" in new.reuse_note and first.model_id[:12] in new.reuse_note
    assert new.predict("ds0", cfg, warehouse=wh).shape[0] == 1
    # for target ds1 the fit before its new run is not the same fit: ds0 changed meanwhile
    other = learner_for(wh, "accuracy", "gbm", dataset="ds1", **FAST)
    assert other.model_id == new.model_id  # ...but the newest one holds every dataset as is


def test_a_fit_that_saw_a_left_out_dataset_is_not_reused(wh):
    whole = learner_for(wh, "accuracy", "gbm", dataset="ds2", **FAST)
    held = learner_for(wh, "accuracy", "gbm", dataset="ds2", exclude=["ds2"], **FAST)
    assert held.model_id != whole.model_id and "ds2" not in held.datasets
    assert "fitted on 'ds2', which this fit leaves out" in held.reuse_note
    # the fit without ds2 serves ds2 as a target either way (its runs enter at predict time)
    assert learner_for(wh, "accuracy", "gbm", dataset="ds2", **FAST).model_id == held.model_id
    assert learner_for(wh, "accuracy", "gbm", dataset="ds1", **FAST).model_id == whole.model_id


def test_other_settings_refit_refit_forces_and_cost_learners_are_reused(wh):
    first = learner_for(wh, "accuracy", "gbm", dataset="ds0", **FAST)
    seed = learner_for(wh, "accuracy", "gbm", dataset="ds0", seed=7, **FAST)
    assert seed.model_id != first.model_id
    forced = learner_for(wh, "accuracy", "gbm", dataset="ds0", refit=True, **FAST)
    assert forced.model_id not in (first.model_id, seed.model_id)
    assert forced.reuse_note.endswith(": --refit")
    anyone = learner_for(wh, "accuracy", "gbm", dataset="ds0", method=None)
    assert anyone.model_id == forced.model_id  # the newest fit of any settings
    cost = learner_for(wh, "accuracy", "gbm", dataset="ds0", cost=True, **FAST)
    assert cost.metric == "duration_s" and cost.config["transform"] == "log"
    assert learner_for(wh, "accuracy", "gbm", dataset="ds0", cost=True, **FAST).reused
    n = _fits(wh)
    assert learner_for(wh, "accuracy", "gbm", dataset="ds0", **FAST).reused and _fits(wh) == n


def test_a_learner_by_id_and_its_one_line_refusals(wh):
    first = learner_for(wh, "accuracy", "gbm", dataset="ds0", **FAST)
    by_id = learner_for(wh, "accuracy", "gbm", learner=first.model_id[:8])
    assert by_id.model_id == first.model_id and "chosen" in by_id.reuse_note
    with pytest.raises(NotFoundError, match=r"no meta-model .learner. with id 'zzz'"):
        learner_for(wh, "accuracy", "gbm", learner="zzz")
    with pytest.raises(ValidationError, match="models metric 'accuracy', not 'log_loss'"):
        learner_for(wh, "log_loss", "gbm", learner=first.model_id)
    with pytest.raises(ValidationError, match="models family 'gbm', not 'svc'"):
        learner_for(wh, "accuracy", "svc", learner=first.model_id)


def test_the_digest_ignores_columns_other_datasets_add_and_row_order():
    runs, meta, _ = make_hierarchical(n_datasets=2, n_runs=5, seed=0)
    base = training_digest(runs, meta)
    extra = pd.concat(
        [runs, pd.DataFrame([{"dataset": "ds1", "run_id": "x", "value": 0.5, "params.new": 1.0}])]
    )
    moved = training_digest(extra.sample(frac=1.0, random_state=0), meta)
    assert moved["ds0"] == base["ds0"] and moved["ds1"] != base["ds1"]
    assert matches(base, moved, dataset="ds1") is None
    assert "'ds1' changed" in matches(base, moved, dataset="ds0")
    assert "'ds9' new" in matches(base, {**base, "ds9": "x"})


def test_optimize_reuses_the_fit_of_the_other_datasets(wh):
    from metaopt_bayes.search import optimize
    from metaopt_bayes.space import SearchSpace

    space = SearchSpace.from_dict(
        {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
         "depth": {"type": "int", "low": 1, "high": 11},
         "booster": {"type": "categorical", "choices": ["gbtree", "dart"]}}
    )  # fmt: skip

    def score(cfg):
        return {"accuracy": 0.8 - 0.01 * abs(cfg["depth"] - 5)}

    kw = {"space": space, "objective": score, "metric": "accuracy", "fit_method": "map"}
    first = optimize(wh, "ds3", "gbm", 2, refit_every=1, **kw)
    fitted = first.learner.model_id
    assert "ds3" not in first.learner.datasets and _fits(wh) == 1  # no refit: others unchanged
    second = optimize(wh, "ds3", "gbm", 4, refit_every=1, **kw)  # resumes with 2 more trials
    assert second.learner.model_id == fitted and second.learner.reused and _fits(wh) == 1
    again = optimize(wh, "ds3", "gbm", 5, reuse=False, **kw)
    assert again.learner.model_id != fitted and _fits(wh) == 2


def test_cli_recommend_twice_fits_once_and_says_which(wh, tmp_path):
    from metaopt_bayes.cli import main

    path = wh.path
    wh.close()
    args = ["--db", path, "recommend", "-d", "ds0", "-m", "gbm", "--method", "map", "--n", "2"]
    cands = tmp_path / "c.csv"
    pd.DataFrame({"lr": [1e-3, 1e-2, 0.1], "depth": [2, 4, 6], "booster": ["dart"] * 3}).to_csv(
        cands, index=False
    )
    r = CliRunner()
    one = r.invoke(main, [*args, "--candidates", str(cands), "--format", "json"])
    assert one.exit_code == 0, one.output
    assert one.stderr.startswith("fitted learner ")
    two = r.invoke(main, [*args, "--candidates", str(cands), "--format", "json"])
    assert two.exit_code == 0 and "unchanged" in two.stderr, two.output
    assert json.loads(two.stdout) == json.loads(one.stdout)
    with Warehouse(path) as w:
        assert _fits(w) == 1
    bad = r.invoke(main, [*args, "--learner", "nope", "--candidates", str(cands)])
    assert bad.exit_code == 1 and bad.output.strip().startswith("Error: no meta-model")
    assert len(bad.output.strip().splitlines()) == 1
