"""recommend(): the public contract (columns, order, exclusion, batches, cost-aware)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metaopt_bayes.search import exclude_run, load_candidates, recommend
from tests.search.conftest import FakeCost
from warehouse.errors import ValidationError


def test_contract_columns_unchanged_best_first(fake_learner, wh, pool):
    out = recommend(fake_learner, wh, "d1", pool, n=5)
    assert list(out.columns) == ["x", "c", "mean", "sd", "acquisition", "rank", "random"]
    assert out["rank"].tolist() == [1, 2, 3, 4, 5]
    # values unchanged: every row is a row of the pool
    keys = set(map(tuple, pool.astype(str).to_numpy()))
    assert all(tuple(r) in keys for r in out[["x", "c"]].astype(str).to_numpy())
    # with no runs the incumbent is the best predicted mean; EI top pick is the true optimum
    assert (out.at[0, "x"], out.at[0, "c"]) == (0.3, "b")
    assert not out.duplicated(["x", "c"]).any()


def test_configs_already_run_are_excluded_unless_asked(fake_learner, wh, pool):
    wh.log_run("d1", "toy", {"x": 0.3, "c": "b"}, {"score": 0.1})
    wh.log_run("d2", "toy", {"x": 0.35, "c": "b"}, {"score": 0.1})  # another dataset: kept
    out = recommend(fake_learner, wh, "d1", pool, n=len(pool))
    assert len(out) == len(pool) - 1
    assert not ((out["x"] == 0.3) & (out["c"] == "b")).any()
    assert ((out["x"] == 0.35) & (out["c"] == "b")).any()
    again = recommend(fake_learner, wh, "d1", pool, n=len(pool), include_run=True)
    assert len(again) == len(pool)


def test_everything_run_is_a_clear_error(fake_learner, wh):
    one = pd.DataFrame({"x": [0.5], "c": ["a"]})
    wh.log_run("d1", "toy", {"x": 0.5, "c": "a"}, {"score": 0.0})
    with pytest.raises(ValidationError, match="already run"):
        recommend(fake_learner, wh, "d1", one)


def test_batch_is_distinct_and_spread_by_kriging_believer(fake_learner, wh, pool):
    wh.log_run("d1", "toy", {"x": 0.0, "c": "a"}, {"score": -0.09})
    out = recommend(fake_learner, wh, "d1", pool, n=4)
    assert not out.duplicated(["x", "c"]).any()
    # the fantasized first pick shrinks sd around it, so the batch is not 4 neighbours in a row
    assert out["x"].nunique() >= 2


def test_thompson_batch(fake_learner, wh, pool):
    out = recommend(fake_learner, wh, "d1", pool, n=3, acquisition="ts", seed=1)
    assert len(out) == 3 and not out.duplicated(["x", "c"]).any()
    assert out["acquisition"].between(0, 1).all()  # P(best) under the posterior


def test_minimize_direction(wh, pool):
    from tests.search.conftest import FakeLearner

    lrn = FakeLearner(maximize=False)
    out = recommend(lrn, wh, "d1", pool, n=1)
    assert (out.at[0, "x"], out.at[0, "c"]) == (0.3, "b")  # mean is −f, lowest is best


def test_cost_aware_prefers_cheap(fake_learner, wh):
    # same x, two costs: cost-ei picks the 1-second config
    cands = pd.DataFrame({"x": [0.3, 0.3], "c": ["a", "b"]})
    out = recommend(
        fake_learner, wh, "d1", cands, n=1, acquisition="cost-ei", cost_learner=FakeCost()
    )
    assert out.at[0, "c"] == "b" and "predicted_s" in out.columns
    with pytest.raises(ValidationError, match="duration model"):
        recommend(fake_learner, wh, "d1", cands, acquisition="cost-ei")


def test_unknown_acquisition(fake_learner, wh, pool):
    with pytest.raises(ValidationError, match="unknown acquisition"):
        recommend(fake_learner, wh, "d1", pool, acquisition="nope")


def test_candidates_from_csv_with_prefix(fake_learner, wh, pool, tmp_path):
    path = tmp_path / "pool.csv"
    pool.add_prefix("params.").to_csv(path, index=False)
    df = load_candidates(path)
    assert list(df.columns) == ["x", "c"]
    out = recommend(fake_learner, wh, "d1", str(path), n=2)
    assert list(out.columns[:2]) == ["x", "c"]
    with pytest.raises(Exception, match="no candidates file"):
        load_candidates(tmp_path / "missing.csv")


def test_candidates_from_a_search_space(fake_learner, wh):
    from metaopt_bayes.space import SearchSpace

    space = SearchSpace.from_dict(
        {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "c": {"type": "categorical", "choices": ["a", "b"]},
        }
    )
    wh.log_run("d1", "toy", {"x": 0.31, "c": "b"}, {"score": 0.1})
    out = recommend(fake_learner, wh, "d1", space, n=3, n_candidates=64)
    assert len(out) == 3
    for rec in out[["x", "c"]].to_dict("records"):
        space.validate(rec)
    # local refinement around the best run puts candidates near x = 0.31
    assert (out["x"] - 0.3).abs().min() < 0.1


def test_exclude_run_normalizes_types():
    cands = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    runs = pd.DataFrame({"params.a": [1.0, 3.0], "params.b": ["x", np.nan]})
    assert exclude_run(cands, runs, ["a", "b"]).tolist() == [False, True, False]


def test_exclude_run_with_nullable_and_unhashable_values_matches_keying_every_row():
    from metaopt_bayes.candidates import config_keys

    cands = pd.DataFrame(
        {"a": pd.array([1, None, 3], dtype="Int64"), "b": [pd.NA, "x", None], "l": [[1], [2], [1]]}
    )
    runs = pd.DataFrame(
        {
            "params.a": pd.array([None, 3], dtype="Int64"),
            "params.b": ["x", None],
            "params.l": [[2], [1]],
        }
    )
    for names in (["a"], ["a", "b"], ["b"], ["a", "l"]):
        seen = set(config_keys(runs, names, "params."))
        want = [k not in seen for k in config_keys(cands, names)]
        assert exclude_run(cands, runs, names).tolist() == want, names


def test_exclude_run_on_a_large_pool_matches_keying_every_row():
    """exclude_run keys only the candidates that could match a run; on a pool mixing types
    (ints, floats equal up to printing, booleans, text numbers, unset values) it must agree
    with keying every row."""
    from metaopt_bayes.candidates import config_keys

    rng = np.random.default_rng(2)
    n = 5000
    cands = pd.DataFrame(
        {
            "lr": rng.choice([0.1, 0.3, 1 / 3, np.nan], n),
            "depth": rng.integers(1, 6, n),
            "flag": rng.choice([True, False], n),
            "kind": rng.choice(["gini", "entropy", "10", None], n),
        }
    )
    runs = cands.sample(40, random_state=0).add_prefix("params.")
    runs["params.lr"] = runs["params.lr"] * (1 + 1e-12)  # read back with rounding noise
    runs["params.kind"] = runs["params.kind"].replace({"10": 10.0})
    runs = pd.concat([runs, pd.DataFrame({"params.lr": [0.2], "params.depth": [9]})])
    runs["params.seed"] = np.where(np.arange(len(runs)) % 2, 7.0, np.nan)  # not a candidate column
    names = ["lr", "depth", "flag", "kind"]
    for keys in (names, [*names, "absent"], [*names, "seed"]):
        seen = set(config_keys(runs, keys, "params."))
        want = [k not in seen for k in config_keys(cands, keys)]
        got = exclude_run(cands, runs, keys)
        assert got.tolist() == want and 0 < sum(want) < n


def test_zero_shot_ei_starts_from_the_best_mean_then_explores(wh, pool):
    """Against a predicted incumbent EI would take the widest interval first; with nothing
    observed the first EI pick is the best predicted mean, afterwards EI decides."""
    from tests.search.conftest import FakeLearner

    class Wide(FakeLearner):
        def predict(self, dataset, configs, *args, **kwargs):
            out = super().predict(dataset, configs, *args, **kwargs)
            wide = (self._col(configs, "x").astype(float) == 0.9) & (
                self._col(configs, "c").astype(str) == "a"
            )
            out.loc[wide, "sd"] = 5.0  # a far corner the model knows nothing about
            return out

    lrn = Wide()
    first = recommend(lrn, wh, "d1", pool, n=2)
    assert (first.at[0, "x"], first.at[0, "c"]) == (0.3, "b")  # best mean, not the corner
    assert (first.at[1, "x"], first.at[1, "c"]) == (0.9, "a")  # then EI: the corner
    wh.log_run("d1", "toy", {"x": 0.3, "c": "b"}, {"score": 0.1})
    after = recommend(lrn, wh, "d1", pool, n=1)
    assert (after.at[0, "x"], after.at[0, "c"]) == (0.9, "a")
    # cost-aware EI keeps its own first pick
    cands = pd.DataFrame({"x": [0.3, 0.9], "c": ["a", "b"]})
    out = recommend(lrn, wh, "d2", cands, n=1, acquisition="cost-ei", cost_learner=FakeCost())
    assert out.at[0, "x"] == 0.9


def test_portfolio_configs_join_the_space_candidates():
    from metaopt_bayes.search import space_candidates
    from metaopt_bayes.space import SearchSpace

    space = SearchSpace.from_dict(
        {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "c": {"type": "categorical", "choices": ["a", "b"]},
        }
    )
    inside, outside = {"x": 0.123456789, "c": "b"}, {"x": 7.0, "c": "a"}
    plain = space_candidates(space, 16, seed=0)
    cands = space_candidates(space, 16, seed=0, portfolio=[inside, outside, {"c": "a"}])
    # the in-space config is added exactly; out-of-range and incomplete ones are skipped
    assert len(cands) == len(plain) + 1
    assert cands.iloc[-1].to_dict() == inside
    assert (cands["x"] <= 1.0).all()


def test_configs_read_back_from_the_warehouse_still_seed_the_candidates():
    # booleans come back from the warehouse as 1.0/0.0: the best runs must still be refined
    # locally and the portfolio kept (both were silently dropped for spaces with a boolean)
    from metaopt_bayes.search import space_candidates
    from metaopt_bayes.space import SearchSpace

    space = SearchSpace.from_dict(
        {"x": {"type": "float", "low": 0.0, "high": 1.0}, "flag": [True, False], "es": False}
    )
    stored = {"x": 0.25, "flag": 1.0, "es": 0.0}
    plain = space_candidates(space, 16, seed=0)
    cands = space_candidates(space, 16, seed=0, incumbents=[stored], n_local=8, portfolio=[stored])
    assert len(cands) == len(plain) + 1 + 8
    assert cands.iloc[16].to_dict() == {"x": 0.25, "flag": True, "es": False}
    assert (cands["es"] == False).all()  # noqa: E712 — the fixed value, as a bool


def test_recommend_can_pick_a_portfolio_config(fake_learner, wh):
    from metaopt_bayes.space import SearchSpace

    space = SearchSpace.from_dict(
        {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "c": {"type": "categorical", "choices": ["a", "b"]},
        }
    )
    fake_learner.portfolio = [{"x": 0.3, "c": "b"}]  # the true optimum, known from history
    out = recommend(fake_learner, wh, "d1", space, n=1, n_candidates=8)
    assert (out.at[0, "x"], out.at[0, "c"]) == (0.3, "b")
    fake_learner.portfolio = []
    out = recommend(fake_learner, wh, "d1", space, n=1, n_candidates=8)
    assert out.at[0, "x"] != 0.3


def test_random_steps_come_where_the_search_stalls():
    from metaopt_bayes.batch import random_steps, trials_since_best

    assert trials_since_best([0.1, 0.5, 0.3, 0.5, 0.2], maximize=True) == 3  # first to reach it
    assert trials_since_best([0.4, 0.1, 0.3], maximize=False) == 1
    assert trials_since_best([float("nan")], maximize=True) is None
    assert random_steps(8, None, 9, seed=0) == {}  # nothing observed yet
    assert random_steps(8, 0, 8, seed=0) == {}  # the last run was the best: 8 more first
    assert list(random_steps(8, 5, 4, seed=0)) == [3]  # the 8th trial without improvement
    assert list(random_steps(3, 1, 7, seed=0)) == [2, 5]
    assert random_steps(0, 20, 5, seed=0) == {}
    a, b = random_steps(8, 8, 1, seed=3, done=9)[0], random_steps(8, 8, 1, seed=3, done=9)[0]
    assert a.integers(1 << 30) == b.integers(1 << 30)  # a resumed search repeats its choice
    for bad in (-1, 1.5, True):
        with pytest.raises(ValidationError, match="random_every"):
            random_steps(bad, 0, 1, seed=0)


def _stalled(wh, n_after: int) -> set:
    """The best run first, then ``n_after`` worse ones."""
    xs = (0.3, 0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.4, 0.45)[: n_after + 1]
    for x in xs:
        wh.log_run("d1", "toy", {"x": x, "c": "b"}, {"score": -((x - 0.3) ** 2)})
    return {(x, "b") for x in xs}


def test_a_stalled_search_gets_a_random_candidate(fake_learner, wh, pool):
    tried = _stalled(wh, 8)
    model = recommend(fake_learner, wh, "d1", pool, n=1, random_every=0)
    picks = [recommend(fake_learner, wh, "d1", pool, n=1, seed=s) for s in range(6)]
    assert not model.at[0, "random"] and all(p.at[0, "random"] for p in picks)
    # drawn at random from the untried candidates, not the acquisition's choice
    chosen = {(p.at[0, "x"], p.at[0, "c"]) for p in picks}
    assert len(chosen) >= 3 and not chosen & tried
    # in a batch only the step 8 trials after the best is random; pending trials count
    assert recommend(fake_learner, wh, "d1", pool, n=3)["random"].tolist() == [True, False, False]
    pending = pd.DataFrame({"x": [0.5], "c": ["a"]})
    out = recommend(fake_learner, wh, "d1", pool, n=2, pending=pending, random_every=9)
    assert out["random"].tolist() == [True, False]


def test_a_search_that_keeps_improving_gets_no_random_candidate(fake_learner, wh, pool):
    for i, x in enumerate((0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.28, 0.29, 0.3)):
        wh.log_run("d1", "toy", {"x": x, "c": "a"}, {"score": 0.1 * i})
    assert not recommend(fake_learner, wh, "d1", pool, n=8)["random"].any()


def test_a_random_pick_from_a_space_is_one_of_its_sobol_points(fake_learner, wh):
    from metaopt_bayes.space import SearchSpace

    space = SearchSpace.from_dict(
        {
            "x": {"type": "float", "low": 0.0, "high": 1.0},
            "c": {"type": "categorical", "choices": ["a", "b"]},
        }
    )
    _stalled(wh, 8)
    for seed in range(4):
        out = recommend(fake_learner, wh, "d1", space, n=1, n_candidates=64, seed=seed)
        assert out.at[0, "random"]
        sobol = space.sample(64, seed=seed)
        hit = np.isclose(sobol["x"].to_numpy(float), out.at[0, "x"]) & (
            sobol["c"] == out.at[0, "c"]
        )
        assert hit.any()  # not one of the neighbours around the best runs


class _Historied:
    """A FakeLearner whose history has two kinds of dataset: on three, configs with c='b'
    are best (x barely matters); on one, c='a' near x=0.9 is. Normalized regret per dataset."""

    @staticmethod
    def history_regret(configs):
        x = np.asarray(configs["x"], float)
        b = np.asarray(configs["c"]).astype(str) == "b"
        kind_b = np.where(b, 0.1 * np.abs(x - 0.3), 1.0)
        kind_a = np.where(b, 1.0, np.abs(x - 0.9))
        return np.stack([kind_b, kind_b, kind_b, kind_a])


def test_the_first_trials_come_from_the_historys_portfolio(wh, pool):
    """With EI a dataset's first ``warm_start`` trials are the greedy portfolio of the
    history's surfaces: first the best config on average over the training datasets, then
    the one covering the datasets it serves worst (not the second best on average); once
    the dataset has run ``warm_start`` trials EI decides as before, and warm_start=0 is the
    0.5.0 rule (the best predicted mean first)."""
    from tests.search.conftest import FakeLearner

    class Learner(_Historied, FakeLearner):
        pass

    lrn = Learner()
    out = recommend(lrn, wh, "d1", pool, n=2, warm_start=3)
    assert (out.at[0, "x"], out.at[0, "c"]) == (0.3, "b")  # best on average (regret 0.25)
    assert (out.at[1, "x"], out.at[1, "c"]) == (0.9, "a")  # covers the fourth dataset
    # one trial at a time, the runs so far count as covered
    wh.log_run("d1", "toy", {"x": 0.3, "c": "b"}, {"score": 0.1})
    nxt = recommend(lrn, wh, "d1", pool, n=1, warm_start=3)
    assert (nxt.at[0, "x"], nxt.at[0, "c"]) == (0.9, "a")
    # off: the 0.5.0 rule, then EI
    off = recommend(lrn, wh, "d2", pool, n=1, warm_start=0)
    assert (off.at[0, "x"], off.at[0, "c"]) == (0.3, "b")
    wh.log_run("d1", "toy", {"x": 0.9, "c": "a"}, {"score": -0.36})
    wh.log_run("d1", "toy", {"x": 0.5, "c": "b"}, {"score": 0.06})
    warm = recommend(lrn, wh, "d1", pool, n=3, warm_start=3)
    plain = recommend(FakeLearner(), wh, "d1", pool, n=3)
    pd.testing.assert_frame_equal(warm, plain)  # three runs: the warm start is over
    # other acquisitions keep their own picks
    ucb = recommend(lrn, wh, "d3", pool, n=1, acquisition="ucb", warm_start=3)
    assert (ucb.at[0, "x"], ucb.at[0, "c"]) == (0.3, "b")


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_a_bad_warm_start_is_a_one_line_error(fake_learner, wh, pool, bad):
    with pytest.raises(ValidationError, match="warm_start must be a whole number"):
        recommend(fake_learner, wh, "d1", pool, warm_start=bad)


def test_optimize_and_the_cli_pass_warm_start_on(monkeypatch, tmp_path):
    """optimize(warm_start=) and --warm-start reach recommend; a bad value is one line."""
    from click.testing import CliRunner

    from metaopt_bayes.cli import main
    from metaopt_bayes.trials import SearchSettings
    from warehouse import Warehouse

    db = str(tmp_path / "w.duckdb")
    with Warehouse(db) as w:
        w.register_dataset("iris", "sklearn:iris", "target")

    with pytest.raises(ValidationError, match="warm_start must be a whole number"):
        SearchSettings(warm_start=-2).check(3)
    seen: dict = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr("metaopt_bayes.search.optimize", fake)
    res = CliRunner().invoke(
        main,
        ["--db", db, "optimize", "-d", "iris", "-m", "svc", "--warm-start", "0", "-t", "2"],
    )
    assert seen.get("warm_start") == 0, res.output
    args = ["--db", db, "recommend", "-d", "iris", "-m", "svc", "--warm-start", "-1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and "-1" in res.output


def test_a_large_pool_scores_a_seeded_subset_for_the_warm_pick(wh, pool, monkeypatch):
    """Past WARM_POOL candidates the warm pick scores a seeded random subset (its cost grows
    with candidates × training datasets); the pick is the subset's best and is reproducible."""
    from tests.search.conftest import FakeLearner

    sizes: list[int] = []

    class Learner(_Historied, FakeLearner):
        def history_regret(self, configs):
            sizes.append(len(configs))
            return _Historied.history_regret(configs)

    monkeypatch.setattr("metaopt_bayes.batch.WARM_POOL", 10)
    lrn = Learner()
    a = recommend(lrn, wh, "d1", pool, n=1, warm_start=3, seed=4)
    b = recommend(lrn, wh, "d1", pool, n=1, warm_start=3, seed=4)
    assert sizes == [10, 10]
    pd.testing.assert_frame_equal(a, b)
    # the pick is the best of the scored subset under the history's mean regret
    rows = np.sort(np.random.default_rng(4).choice(len(pool), 10, replace=False))
    sub = pool.iloc[rows]
    best = sub.iloc[int(np.argmin(_Historied.history_regret(sub).mean(axis=0)))]
    assert (a.at[0, "x"], a.at[0, "c"]) == (best["x"], best["c"])
