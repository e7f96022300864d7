"""End to end with the real trainer and MetaLearner (slow: real fits and PyMC)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_optimize_builtin_trainer_retrains_and_saves_the_winner(tmp_path):
    pytest.importorskip("metaopt_bayes.model")
    import joblib

    from metaopt_bayes import load_winner
    from metaopt_bayes.search import FINAL_SOURCE, optimize
    from metaopt_bayes.sweeps import sweep
    from warehouse import Warehouse
    from warehouse.errors import ValidationError

    with Warehouse(str(tmp_path / "w.duckdb")) as wh:
        for name in ("iris", "wine"):
            wh.register_dataset(name, f"sklearn:{name}", "target")
        sweep(wh, "iris", "knn", 8, progress=False, cv=3)
        res = optimize(wh, "wine", "knn", 4, fit_method="map", cv=3, refit_every=2)
        assert res.n_new == 4 and len(res.trials) == 4
        assert res.best_config is not None and 0 < res.best_value <= 1
        assert set(res.test_metrics) >= {"accuracy", "balanced_accuracy"}
        final = wh.sql("SELECT run_id, source FROM runs WHERE source = ?", [FINAL_SOURCE])
        assert final.run_id.tolist() == [res.final_run_id]
        assert res.model_path is not None and res.model_path.exists()
        est = load_winner(res.model_path)  # the pickle, after its SHA-256 is checked
        assert type(est) is type(joblib.load(res.model_path))
        # a saved winner changed on disk is refused before anything is unpickled
        tampered = tmp_path / res.model_path.name
        tampered.write_bytes(res.model_path.read_bytes() + b"\0")
        (tmp_path / (res.model_path.name + ".sha256")).write_bytes(
            res.model_path.with_name(res.model_path.name + ".sha256").read_bytes()
        )
        with pytest.raises(ValidationError, match="does not match"):
            load_winner(tampered)
        (tmp_path / (res.model_path.name + ".sha256")).unlink()
        with pytest.raises(ValidationError, match="unchecked"):
            load_winner(tampered)
        from metaopt_bayes.trainer import load_dataset

        X, y, _ = load_dataset(wh, "wine")
        assert (est.predict(X) == y).mean() > 0.5


def test_learner_recommend_contract(tmp_path):
    """MetaLearner.recommend(warehouse, dataset, candidates, n, acquisition) → DataFrame."""
    pd = pytest.importorskip("pandas")
    import numpy as np

    from metaopt_bayes.model import MetaLearner
    from warehouse import Warehouse

    rng = np.random.default_rng(0)
    rows = []
    for d, shift in (("a", 0.0), ("b", 0.1), ("c", -0.05), ("e", 0.02)):
        for x in rng.uniform(0.01, 1.0, 15):
            acc = 0.8 - (x - 0.4) ** 2 + shift + rng.normal(0, 0.01)
            rows.append(
                {"dataset": d, "model": "toy", "params.x": float(x), "metrics.accuracy": float(acc)}
            )
    with Warehouse(":memory:") as wh:
        wh.log_runs(pd.DataFrame(rows))
        lrn = MetaLearner("accuracy", model="toy", method="map").fit(wh)
        cands = pd.DataFrame({"x": [0.05, 0.2, 0.4, 0.6, 0.95]})
        out = lrn.recommend(wh, "a", cands, n=2, acquisition="ei", include_run=True)
        assert list(out.columns) == ["x", "mean", "sd", "acquisition", "rank", "random"]
        assert out["rank"].tolist() == [1, 2]
        assert set(out["x"]) <= set(cands["x"])
