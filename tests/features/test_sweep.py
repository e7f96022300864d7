"""Sweeps: sampled configs trained and logged; failures logged; parallel workers."""

from __future__ import annotations

import pytest

from metaopt_bayes.sweeps import design_seed, new_design_points, sweep
from metaopt_bayes.trainer import train_and_evaluate
from warehouse.errors import NotFoundError, ValidationError


@pytest.fixture
def iris_wh(mem_wh, iris_frame):
    mem_wh.register_dataset("iris", iris_frame, "target")
    return mem_wh


def test_train_and_evaluate_logs_everything(iris_wh):
    rid = train_and_evaluate(
        iris_wh,
        "iris",
        "mlp",
        {"n_layers": 2, "width": 16, "activation": "relu", "max_iter": 300},
        cv=3,
        seed=1,
    )
    run = iris_wh.sql(f"SELECT * FROM runs WHERE run_id = '{rid}'").iloc[0]
    assert run["status"] == "finished" and run["duration_s"] > 0 and run["cpu_s"] >= 0
    assert run["peak_mem_mb"] >= 0 and run["seed"] == 1
    arch = iris_wh.sql(
        f"SELECT name, value_num, value_text FROM run_architecture WHERE run_id = '{rid}'"
    ).set_index("name")
    assert arch.loc["n_layers", "value_num"] == 2 and arch.loc["width", "value_num"] == 16
    assert arch.loc["activation", "value_text"] == "relu"
    metrics = set(iris_wh.sql(f"SELECT name FROM run_metrics WHERE run_id = '{rid}'")["name"])
    assert {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"} <= metrics


def _configs(wh, dataset="iris"):
    """Each run's knn config as a tuple, in logging order."""
    df = wh.sql(
        "SELECT r.seq, p.name, coalesce(p.value_text, CAST(p.value_num AS VARCHAR)) AS v "
        f"FROM runs r JOIN run_params p USING (run_id) WHERE r.dataset = '{dataset}'"
    )
    wide = df.pivot(index="seq", columns="name", values="v").sort_index()
    return [tuple(row) for row in wide[["n_neighbors", "weights", "p"]].itertuples(index=False)]


def test_sweep_logs_n_runs_and_is_reproducible(iris_wh, iris_frame):
    from warehouse import Warehouse

    ids = sweep(iris_wh, "iris", "knn", 6, seed=5, progress=False, cv=3)
    assert len(ids) == len(set(ids)) == 6
    runs = iris_wh.sql("SELECT status, seed FROM runs ORDER BY seq")
    assert (runs["status"] == "finished").all() and len(runs) == 6
    other = Warehouse(":memory:")  # the same sweep elsewhere draws the same configs
    other.register_dataset("iris", iris_frame, "target")
    sweep(other, "iris", "knn", 6, seed=5, progress=False, cv=3)
    assert _configs(other) == _configs(iris_wh)
    assert sorted(other.sql("SELECT seed FROM runs").seed) == sorted(runs.seed)


def test_a_second_sweep_continues_the_design(iris_wh):
    sweep(iris_wh, "iris", "knn", 5, seed=5, progress=False, cv=3)
    first = _configs(iris_wh)
    sweep(iris_wh, "iris", "knn", 5, seed=5, progress=False, cv=3)
    both = _configs(iris_wh)
    assert len(both) == 10 and both[:5] == first
    assert not set(both[5:]) & set(first)  # five new configs, none repeated
    seeds = iris_wh.sql("SELECT seed FROM runs ORDER BY seq").seed.tolist()
    assert len(set(seeds)) == 10  # each config its own model seed, as in one long sweep


def test_a_stopped_sweep_trains_only_what_is_missing(iris_wh):
    from metaopt_bayes.zoo import get_family

    space = get_family("knn").default_space("classification")
    design = [cfg for _, cfg in new_design_points(space, 8, design_seed(3, "iris"), set())]
    # a sweep of 8 stopped after three runs (finished out of order, as with --jobs)
    sweep(iris_wh, "iris", "knn", 0, progress=False, cv=3, configs=[design[i] for i in (0, 2, 5)])
    sweep(iris_wh, "iris", "knn", 5, seed=3, progress=False, cv=3)
    assert sorted(_configs(iris_wh)) == sorted(
        tuple(str(float(c[k])) if k != "weights" else c[k] for k in ("n_neighbors", "weights", "p"))
        for c in design
    )


def test_include_run_repeats_and_a_small_space_runs_out(iris_wh):
    space = {"n_neighbors": {"type": "int", "low": 3, "high": 4}, "weights": ["uniform"]}
    ids = sweep(iris_wh, "iris", "knn", 5, space=space, progress=False, cv=3)
    assert len(ids) == 2  # only two distinct configs exist
    assert sweep(iris_wh, "iris", "knn", 5, space=space, progress=False, cv=3) == []
    again = sweep(iris_wh, "iris", "knn", 2, space=space, progress=False, cv=3, include_run=True)
    assert len(again) == 2


def test_each_dataset_gets_its_own_design(iris_wh, iris_frame):
    # a history of several datasets should cover the space with different points
    iris_wh.register_dataset("iris2", iris_frame, "target")
    for name in ("iris", "iris2"):
        sweep(iris_wh, name, "knn", 4, seed=5, progress=False, cv=3)
    cfg = iris_wh.sql(
        "SELECT r.dataset, p.value_num FROM runs r JOIN run_params p USING (run_id)"
        " WHERE p.name = 'n_neighbors'"
    )
    a, b = (sorted(cfg.loc[cfg.dataset == d, "value_num"]) for d in ("iris", "iris2"))
    assert len(a) == len(b) == 4 and a != b
    assert design_seed(5, "iris") == design_seed(5, "iris")  # stable, not Python's hash
    assert design_seed(5, "iris") != design_seed(6, "iris")


def test_failing_configs_are_logged_and_the_sweep_goes_on(iris_wh):
    # n_neighbors up to 500 > training rows: those configs raise inside sklearn
    space = {"n_neighbors": {"type": "int", "low": 1, "high": 500}}
    ids = sweep(iris_wh, "iris", "knn", 8, space=space, progress=False, cv=3, seed=0)
    runs = iris_wh.sql(
        "SELECT r.status, r.error, p.value_num AS k FROM runs r "
        "JOIN run_params p USING (run_id) WHERE p.name = 'n_neighbors'"
    )
    assert len(ids) == 8 == len(runs)
    failed = runs[runs["status"] == "failed"]
    assert len(failed) and (failed["k"] > 100).all()
    assert failed["error"].str.contains("n_neighbors").all()
    assert (runs.loc[runs["status"] == "finished", "k"] <= 100).all()


def test_timeout_in_a_sweep_is_a_failed_run(iris_wh):
    space = {
        "n_layers": 3,
        "width": 256,
        "max_iter": 20000,
        "alpha": 1e-7,
        "learning_rate_init": {"type": "float", "low": 1e-5, "high": 2e-5},
        "early_stopping": False,
        "tol": 0.0,
    }
    with pytest.raises(ValidationError):  # 'tol' is not an MLP parameter we expose
        sweep(iris_wh, "iris", "mlp", 1, space={**space, "tol": "x", "bad": []}, progress=False)
    del space["tol"]
    ids = sweep(iris_wh, "iris", "mlp", 1, space=space, progress=False, timeout_s=1.0)
    run = iris_wh.sql(f"SELECT status, error FROM runs WHERE run_id = '{ids[0]}'").iloc[0]
    assert run["status"] == "failed" and "time limit" in run["error"]


def test_bad_space_or_names_fail_before_any_run(iris_wh, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  C: {type: float, low: 5, high: 1}\n")
    with pytest.raises(ValidationError, match="'C': low 5 is greater"):
        sweep(iris_wh, "iris", "svc", 3, space=str(bad), progress=False)
    with pytest.raises(NotFoundError, match="unknown model"):
        sweep(iris_wh, "iris", "xgboost", 3, progress=False)
    with pytest.raises(NotFoundError, match="'nope' is not registered"):
        sweep(iris_wh, "nope", "knn", 3, progress=False)
    with pytest.raises(ValidationError, match="does not support classification"):
        sweep(iris_wh, "iris", "ridge", 3, progress=False)
    # what would fail every trial: refused once, before the first
    with pytest.raises(ValidationError, match="cv must be an integer >= 2"):
        sweep(iris_wh, "iris", "knn", 3, progress=False, cv=-2)
    with pytest.raises(ValidationError, match="cv=1000 folds but the dataset has only 150"):
        sweep(iris_wh, "iris", "knn", 3, progress=False, cv=1000)
    with pytest.raises(ValidationError, match="no parameter 'n_neigbors'"):
        sweep(iris_wh, "iris", "knn", 3, progress=False, space={"n_neigbors": [3, 5]})
    with pytest.raises(ValidationError, match=r"'n_neighbors' parameter .* must be an int"):
        space = {"n_neighbors": {"type": "float", "low": 1, "high": 30}}
        sweep(iris_wh, "iris", "knn", 3, progress=False, space=space)
    assert iris_wh.sql("SELECT count(*) AS n FROM runs")["n"].iloc[0] == 0


def test_parallel_workers_only_the_driver_writes(iris_wh):
    ids = sweep(iris_wh, "iris", "logistic_regression", 4, jobs=2, progress=False, cv=3)
    runs = iris_wh.sql("SELECT status FROM runs")
    assert len(ids) == 4 and (runs["status"] == "finished").all()


def test_any_executor_can_run_the_trials(iris_wh):
    from concurrent.futures import ThreadPoolExecutor

    seen = []
    with ThreadPoolExecutor(2) as ex:
        ids = sweep(
            iris_wh,
            "iris",
            "knn",
            3,
            executor=ex,
            progress=False,
            cv=3,
            on_result=lambda rid, res: seen.append((rid, res["status"])),
        )
    assert sorted(ids) == sorted(r for r, _ in seen)
    assert [s for _, s in seen] == ["finished"] * 3


def test_explicit_configs_are_validated_by_the_space(iris_wh):
    ids = sweep(
        iris_wh,
        "iris",
        "knn",
        0,
        progress=False,
        cv=3,
        configs=[{"n_neighbors": 3, "weights": "uniform", "p": 1}],
    )
    assert len(ids) == 1
    with pytest.raises(ValidationError, match="'n_neighbors'"):
        sweep(
            iris_wh,
            "iris",
            "knn",
            0,
            progress=False,
            configs=[{"n_neighbors": 0, "weights": "uniform", "p": 1}],
        )


@pytest.mark.parametrize("cv", [3, 1])
def test_text_class_labels_sweep_like_codes(mem_wh, iris_frame, cv):
    # a CSV's yes/no or species names: the checks before the first trial once crashed on them
    df = iris_frame.assign(target=iris_frame["target"].map({0: "setosa", 1: "versi", 2: "virg"}))
    mem_wh.register_dataset("flowers", df, "target")
    ids = sweep(mem_wh, "flowers", "knn", 2, progress=False, cv=cv)
    runs = mem_wh.sql("SELECT status, error FROM runs")
    assert len(ids) == 2 and (runs["status"] == "finished").all(), runs["error"].tolist()


def test_n_zero_trains_nothing_and_a_null_choice_is_sampled(iris_wh):
    assert sweep(iris_wh, "iris", "knn", 0, progress=False, cv=3) == []
    assert len(iris_wh.sql("SELECT * FROM runs")) == 0
    space = {"n_neighbors": [3, 5], "weights": [None, "distance"]}  # as docs/spaces.md has one
    ids = sweep(iris_wh, "iris", "knn", 4, space=space, progress=False, cv=3)
    assert len(ids) == 4  # every combination, the null choice included
    assert sweep(iris_wh, "iris", "knn", 4, space=space, progress=False, cv=3) == []


def test_a_parameter_a_later_space_leaves_out_makes_another_config(iris_wh):
    sweep(iris_wh, "iris", "knn", 2, space={"n_neighbors": [3, 5], "p": 2}, progress=False, cv=3)
    again = sweep(iris_wh, "iris", "knn", 2, space={"n_neighbors": [3, 5]}, progress=False, cv=3)
    assert len(again) == 2  # p unset is not p=2
