"""The learning-curve model (metaopt_bayes/curves.py): features of a partial curve, the closed
form of a dataset's effects (against the dense Gaussian and against the PyMC likelihood),
calibration on simulated curves, the predictive CDF, prob_beats, save/load."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import multivariate_normal

from metaopt_bayes.curves import (
    CurveModel,
    _curve_rows,
    curve_summary,
    mixture_quantiles,
    residual_mixture,
)
from warehouse.errors import ValidationError

STEPS = np.arange(1, 41)


def simulate(
    n_datasets: int = 10,
    n_runs: int = 16,
    seed: int = 0,
    steps: np.ndarray = STEPS,
    grain: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accuracy curves ``expit(z)``, ``z(t) = c − A (t^−α_d − T^−α_d) + noise``: per dataset a
    level, a rate ``α_d`` and a noise level; per run a level and an amplitude that depend on a
    config parameter ``lr``; ``grain``: accuracies rounded to multiples of 1/grain (a
    validation set of ``grain`` rows, where curves often stay put). Returns (curves,
    configs)."""
    rng = np.random.default_rng(seed)
    T = steps[-1]
    rows, confs = [], []
    for d in range(n_datasets):
        level, alpha = rng.normal(1.0, 0.7), rng.uniform(0.4, 1.2)
        sigma = np.exp(rng.uniform(np.log(0.04), np.log(0.2)))
        for k in range(n_runs):
            lr = rng.uniform(-1, 1)
            c = level + 0.3 * lr + rng.normal(0, 0.3)
            amp = np.exp(rng.normal(0.5 - 0.5 * lr, 0.4))
            z = c - amp * (steps ** (-alpha) - T ** (-alpha)) + rng.normal(0, sigma, len(steps))
            rid = f"d{d}-r{k}"
            value = expit(z) if grain is None else np.round(expit(z) * grain) / grain
            rows.append(pd.DataFrame({"run_id": rid, "dataset": f"d{d}", "step": steps,
                                      "value": value}))  # fmt: skip
            confs.append({"run_id": rid, "params.lr": lr})
    return pd.concat(rows, ignore_index=True), pd.DataFrame(confs)


@pytest.fixture(scope="module")
def sim():
    return simulate()


@pytest.fixture(scope="module")
def fitted(sim):
    curves, configs = sim
    train = curves[~curves["dataset"].isin(["d8", "d9"])]
    return CurveModel("accuracy", maximize=True).fit(train, configs, method="map")


# ---- features ------------------------------------------------------------------------------
def test_curve_summary_is_the_slope_on_log_steps_and_the_last_residual():
    lt = np.log(np.arange(1, 21, dtype=float))
    z = 2.0 + 0.5 * lt
    s, r, act = curve_summary(lt, z)
    assert s == pytest.approx(0.5) and r == pytest.approx(0.0, abs=1e-12)
    # the activity: the root mean square change per step over the last doubling (steps 10..20)
    assert act == pytest.approx(np.sqrt(np.mean(np.diff(z[9:]) ** 2)))
    z2 = z.copy()
    z2[-1] += 0.3  # a noisy last point: the residual sees it
    assert curve_summary(lt, z2)[1] > 0.1
    assert curve_summary(lt[:1], z[:1]) == (0.0, 0.0, 0.0)
    assert curve_summary(lt, np.ones_like(lt)) == (0.0, 0.0, 0.0)
    # only the last doubling of steps counts: an early kink does not change the slope
    z3 = np.where(lt < np.log(8), 0.0, 1.0 + 0.25 * lt)
    assert curve_summary(lt, z3)[0] == pytest.approx(0.25)


def test_rows_cut_a_curve_at_the_checkpoints_before_its_budget():
    steps = np.arange(5, 201, 5, dtype=float)
    z = np.log(steps)
    F, anchor, target = _curve_rows(steps, z, 200.0, [0.1, 0.25, 0.5, 0.999])
    np.testing.assert_allclose(anchor, np.log([20, 50, 100, 195]))
    np.testing.assert_allclose(target, np.log(200) - anchor)
    np.testing.assert_allclose(F[:, 0], np.log(200 / np.array([20, 50, 100, 195])))
    np.testing.assert_allclose(F[:, 1], 1.0)


def test_mixture_quantiles_of_one_gaussian_and_of_point_masses():
    from scipy.stats import norm

    q = mixture_quantiles(np.array([[1.0]]), np.array([[2.0]]), np.ones(1), (0.05, 0.5, 0.9))
    np.testing.assert_allclose(q[0], norm.ppf([0.05, 0.5, 0.9], 1.0, 2.0), atol=1e-6)
    q = mixture_quantiles(np.array([[0.0, 1.0]]), np.zeros((1, 2)), np.array([0.3, 0.7]), (0.2,))
    assert q[0, 0] == pytest.approx(0.0, abs=1e-6)


def test_residual_mixture_fits_a_skewed_peaked_law():
    from scipy.stats import norm

    rng = np.random.default_rng(0)
    z = np.where(
        rng.random(20000) < 0.6, rng.normal(-0.5, 0.5, 20000), rng.normal(0.75, 1.2, 20000)
    )
    pi, loc, sc = residual_mixture(z, np.ones_like(z), 4)
    assert pi.sum() == pytest.approx(1.0) and (sc > 0).all()
    for x in (-1.5, -0.5, 0.0, 0.8, 2.5):
        fitted = float(pi @ norm.cdf((x - loc) / sc))
        assert fitted == pytest.approx(np.mean(z <= x), abs=0.01)


# ---- the closed form -----------------------------------------------------------------------
def _hand_model(beta, tau, a=-1.0, b=-2.0, kappa=1.0, c=-0.5, s_v=0.4, gamma=None, s_h=0.8):
    m = CurveModel("accuracy", True, "identity", shape=("L", "sL"), use_configs=False)
    m.transform = None
    m._draws = {
        "beta": np.atleast_2d(beta),
        "a": np.array([a]),
        "b": np.array([b]),
        "kappa": np.array([kappa]),
        "c": np.array([c]),
        "tau": np.atleast_2d(tau),
        "s_v": np.array([s_v]),
        "v": np.zeros((1, 1)),
        "gamma": np.atleast_2d([-1.0, 2.0, -0.3, 0.2] if gamma is None else gamma),
        "s_h": np.array([s_h]),
        "h": np.zeros((1, 1)),
        "lam": np.array([[[0.3, -0.2], [0.1, 0.4]]]),
        "vh_cov": np.array([[[s_v**2, 0.5 * s_v * s_h], [0.5 * s_v * s_h, s_h**2]]]),
        "eps_w": np.ones(1),
        "eps_m": np.zeros(1),
        "eps_s": np.ones(1),
    }
    return m


def test_context_update_matches_the_dense_gaussian():
    # with unit row weights, u | context and the nodes' weights are those of
    # y ~ N(Xβ + RΛ(v, h), R diag(τ²) Rᵀ + diag σ²(L, v)) over the rows that moved, times
    # the stay probabilities σ(η) of the rows that stayed and σ(−η) of those that moved,
    # with (v, h) on the Gauss–Hermite grid of their correlated normal
    rng = np.random.default_rng(3)
    n = 12
    L = rng.uniform(0.1, 2.5, n)
    act = np.where(np.arange(n) % 3 == 0, 0.0, rng.uniform(0, 0.3, n))
    F = np.column_stack([L, rng.normal(size=n), rng.normal(size=n), act])
    X = rng.normal(size=(n, 2))
    R = rng.normal(size=(n, 2))
    y = np.where(np.arange(n) % 4 == 0, 0.0, rng.normal(size=n))
    moved = y != 0
    m = _hand_model([0.3, -0.2], [0.7, 0.4])
    st = m._posterior_state(X, R, F, y, np.ones(n))
    v_nodes, h_nodes, prior = m._nodes()
    assert v_nodes.shape == (1, 35)
    flat = (act == 0).astype(float)
    H = np.column_stack([np.ones(n), flat, L, flat * L])
    logp, means = [], []
    for g in range(v_nodes.shape[1]):
        s2 = np.exp(2 * v_nodes[0, g]) * (
            np.exp(-2.0) * L**2 + np.exp(-4.0) + np.exp(-1.0) * act**2
        )
        T = np.diag([0.49, 0.16])
        mean_u = np.array([[0.3, -0.2], [0.1, 0.4]]) @ [v_nodes[0, g], h_nodes[0, g]]
        Rm, r = R[moved], (y - X @ [0.3, -0.2] - R @ mean_u)[moved]
        cov = Rm @ T @ Rm.T + np.diag(s2[moved])
        eta = H @ [-1.0, 2.0, -0.3, 0.2] + h_nodes[0, g]
        stay = -np.logaddexp(0, np.where(moved, eta, -eta)).sum()
        logp.append(np.log(prior[g]) + multivariate_normal.logpdf(r, np.zeros(len(r)), cov) + stay)
        # posterior mean of u by the dense formula
        means.append(mean_u + T @ Rm.T @ np.linalg.solve(cov, r))
    want = np.exp(np.array(logp) - max(logp))
    np.testing.assert_allclose(st.w[0], want / want.sum(), rtol=1e-8)
    np.testing.assert_allclose(st.m[0], np.array(means), rtol=1e-8, atol=1e-12)


def test_fitting_likelihood_equals_the_closed_form_of_prediction():
    # the PyMC model's collapsed log-likelihood at any point = the sum over datasets of the
    # numpy closed form prediction uses (one algebra for both)
    curves, configs = simulate(n_datasets=3, grain=50)
    m = CurveModel("accuracy", maximize=True)
    X, R, F, y, w, ds = m._prepare(curves, configs)
    assert m.stay_used  # curves on 50 validation rows often stay put
    model = m._build_pymc(X, R, F, y, w, ds)
    rng = np.random.default_rng(0)
    point = {
        "beta": rng.normal(0, 0.3, X.shape[1]),
        "a": -1.2,
        "b": -2.1,
        "kappa": 0.8,
        "c": -0.7,
        "tau": np.array([0.3, 0.6]),
        "s_v": 0.5,
        "v_raw": np.array([0.4, -0.2, 0.8]),
        "gamma": np.array([-0.5, 1.5, -0.2, 0.1]),
        "s_h": 0.7,
        "h_raw": np.array([0.3, -1.0, 0.5]),
        "lam": np.array([[0.4, -0.3], [0.2, 0.1]]),
    }
    loglik = model.logp(vars=model.potentials, jacobian=False)
    pot = model.compile_fn(loglik, inputs=model.value_vars, on_unused_input="ignore")
    ip = model.initial_point()
    vals = {}
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        tr = model.rvs_to_transforms.get(rv)
        x = np.asarray(point[rv.name], dtype=float)
        vals[value.name] = tr.forward(x).eval() if tr is not None else x
    assert set(vals) == set(ip)
    got = float(pot(vals))
    point["v"] = point["s_v"] * point["v_raw"]
    point["h"] = point["s_h"] * point["h_raw"]
    m._draws = {k: np.asarray(v, dtype=float)[None] for k, v in point.items()}
    want = 0.0
    for k in range(3):
        sel = ds == k
        v, h = m._draws["v"][:, k, None], m._draws["h"][:, k, None]
        st = m._posterior_state(X[sel], R[sel], F[sel], y[sel], w[sel], v=v, h=h)
        want += st.loglik[0, 0]
    assert got == pytest.approx(want, rel=1e-9)


# ---- a known answer and calibration --------------------------------------------------------
def test_straight_lines_on_log_steps_are_extrapolated():
    # curves z = c + s log t (+ a little noise): the change still to come is s·L, so the
    # shape's coefficient of s·L is 1 and a new curve's final is its line's value at T
    rng = np.random.default_rng(1)
    rows = []
    for d in range(4):
        for k in range(12):
            c, s = rng.normal(0, 0.5), rng.uniform(0, 0.4)
            z = c + s * np.log(STEPS) + rng.normal(0, 0.02, len(STEPS))
            rows.append(pd.DataFrame({"run_id": f"{d}-{k}", "dataset": f"d{d}", "step": STEPS,
                                      "value": expit(z)}))  # fmt: skip
    curves = pd.concat(rows, ignore_index=True)
    m = CurveModel("accuracy", True).fit(curves[curves["dataset"] != "d3"], method="map")
    beta = dict(zip(m.terms, m._draws["beta"][0], strict=True))
    # (a slope measured through noise is shrunk a little: regression dilution)
    assert 0.75 <= beta["sL"] <= 1.05
    test = curves[curves["dataset"] == "d3"]
    truth = test.groupby("run_id")["value"].last()
    part = test[test["step"] <= 10]
    err = np.abs(m.predict_final(part, 40)["mean"] - truth.reindex(truth.index))
    last = np.abs(part.groupby("run_id")["value"].last() - truth)
    assert err.max() < 0.05 and err.mean() < last.mean() / 4


def test_intervals_are_calibrated_on_simulated_curves(fitted, sim):
    curves, configs = sim
    test = curves[curves["dataset"].isin(["d8", "d9"])]
    truth = test.groupby("run_id")["value"].last()
    hits90, hits50 = [], []
    for frac in (0.1, 0.25, 0.5):
        for _, g in test.groupby("dataset"):
            ids = sorted(g["run_id"].unique())
            ctx = g[g["run_id"].isin(ids[:4])]
            ev = g[~g["run_id"].isin(ids[:4])]
            for context in (None, ctx):
                p = fitted.predict_final(ev[ev["step"] <= frac * 40], 40, context=context,
                                         configs=configs)  # fmt: skip
                y = truth.reindex(p.index)
                hits90 += list((y >= p["q05"]) & (y <= p["q95"]))
                hits50 += list((y >= p["q25"]) & (y <= p["q75"]))
                assert (p["q05"] <= p["q50"]).all() and (p["q50"] <= p["q95"]).all()
    assert 0.8 <= np.mean(hits90) <= 0.99
    assert 0.3 <= np.mean(hits50) <= 0.7


def test_context_moves_a_new_datasets_prediction_towards_its_curves(fitted, sim):
    curves, _ = sim
    g = curves[curves["dataset"] == "d9"]
    ids = sorted(g["run_id"].unique())
    part = g[(g["run_id"] == ids[-1]) & (g["step"] <= 10)]
    alone = fitted.predict_final(part, 40)
    with_ctx = fitted.predict_final(part, 40, context=g[g["run_id"].isin(ids[:8])])
    assert with_ctx["z_sd"].iat[0] < alone["z_sd"].iat[0]
    # a training dataset uses its fitted effects (and ignores the context)
    d0 = curves[(curves["dataset"] == "d0") & (curves["step"] <= 10)]
    known = fitted.predict_final(d0, 40, dataset="d0")
    assert len(known) == 16 and known["sd"].gt(0).all()


def test_a_run_observed_at_its_budget_is_known(fitted, sim):
    curves, _ = sim
    g = curves[curves["run_id"] == "d9-r0"]
    p = fitted.predict_final(g, 40)
    assert p["mean"].iat[0] == pytest.approx(g["value"].iat[-1])
    assert p["sd"].iat[0] == pytest.approx(0.0, abs=1e-6)
    assert fitted.prob_beats(g["step"], g["value"], 40, g["value"].iat[-1] - 0.01) == 1.0


def test_strict_cdf_leaves_out_the_point_mass_of_staying():
    # on 40 validation rows curves often stay put: the predictive has a point mass at the
    # last value, P(final ≤ last) − P(final < last) = P(stay); elsewhere the two agree
    curves, configs = simulate(n_datasets=4, grain=40, seed=2)
    m = CurveModel("accuracy", True).fit(curves[curves["dataset"] != "d3"], configs, method="map")
    assert m.stay_used
    test = curves[curves["dataset"] == "d3"]
    part = test[test["step"] <= 10]
    last = part.groupby("run_id")["value"].last()
    ids, mu, var, w = m._predictive(part, 40, None, None, configs)
    assert (var[:, -1] == 0).all() and (w[:, -1] > 0.01).all()  # the stay component
    np.testing.assert_array_equal(mu[:, -1], m._z(last.reindex(ids).to_numpy()))  # at last
    le = m.cdf(part, 40, last, configs=configs)
    lt = m.cdf(part, 40, last, configs=configs, strict=True)
    np.testing.assert_allclose((le - lt).reindex(ids), w[:, -1], atol=1e-12)
    for shift in np.linspace(-0.2, 0.2, 9):
        vals = (last + shift + 1e-3).clip(0.01, 0.99)  # never exactly the last value
        a = m.cdf(part, 40, vals, configs=configs)
        b = m.cdf(part, 40, vals, configs=configs, strict=True)
        np.testing.assert_allclose(a, b, atol=1e-12)
    for q in (0.3, 0.6, 0.9, 0.97):
        vals = pd.Series(q, index=last.index)
        assert (m.cdf(part, 40, vals, strict=True) <= m.cdf(part, 40, vals) + 1e-12).all()
    # a run observed at its budget: all its mass sits at its final value
    done = test[test["run_id"] == ids[0]]
    final = {ids[0]: done["value"].iat[-1]}
    assert m.cdf(done, 40, final).iat[0] == pytest.approx(1.0)
    assert m.cdf(done, 40, final, strict=True).iat[0] == pytest.approx(0.0)


# ---- prob_beats ----------------------------------------------------------------------------
def test_prob_beats_is_monotone_and_agrees_with_the_cdf(fitted, sim):
    curves, configs = sim
    g = curves[curves["dataset"] == "d9"]
    ids = sorted(g["run_id"].unique())
    # the context carries its runs' configs as params.* columns
    ctx = g[g["run_id"].isin(ids[:5])].merge(configs, on="run_id")
    run = g[(g["run_id"] == ids[-1]) & (g["step"] <= 10)]
    conf = {"lr": float(configs.set_index("run_id").loc[ids[-1], "params.lr"])}
    incs = np.linspace(0.3, 0.99, 25)
    p = [fitted.prob_beats(run["step"], run["value"], 40, i, context=ctx, config=conf)
         for i in incs]  # fmt: skip
    assert np.all(np.diff(p) <= 1e-12) and p[0] > p[-1]
    cdf = fitted.cdf(run, 40, {ids[-1]: 0.8}, context=ctx, configs=configs)
    want = fitted.prob_beats(run["step"], run["value"], 40, 0.8, context=ctx, config=conf)
    assert want == pytest.approx(1 - cdf.iat[0], abs=1e-9)
    # a loss: better means smaller, so the probability rises with the incumbent
    m = CurveModel("accuracy", maximize=False)
    m.__dict__.update({k: v for k, v in fitted.__dict__.items() if k != "maximize"})
    q = [m.prob_beats(run["step"], run["value"], 40, i, context=ctx) for i in incs]
    assert np.all(np.diff(q) >= -1e-12)


def test_prob_beats_takes_well_under_a_millisecond(fitted, sim):
    curves, _ = sim
    g = curves[curves["dataset"] == "d9"]
    ids = sorted(g["run_id"].unique())
    ctx = g[g["run_id"].isin(ids[:5])]
    run = g[(g["run_id"] == ids[-1]) & (g["step"] <= 10)]
    steps, values = run["step"].to_numpy(), run["value"].to_numpy()
    fitted.prob_beats(steps, values, 40, 0.8, context=ctx)  # the context's state, cached
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        fitted.prob_beats(steps, values, 40, 0.8, context=ctx, config={"lr": 0.2})
        times.append(time.perf_counter() - t0)
    assert np.median(times) < 1e-3


# ---- persistence and refusals ---------------------------------------------------------------
def test_save_load_round_trip(fitted, sim, tmp_path):
    curves, configs = sim
    path = fitted.save(tmp_path / "curves.npz")
    back = CurveModel.load(path)
    g = curves[curves["dataset"] == "d8"]
    part = g[g["step"] <= 10]
    ctx = g[g["run_id"].isin(["d8-r0", "d8-r1"])]
    a = fitted.predict_final(part, 40, context=ctx, configs=configs)
    b = back.predict_final(part, 40, context=ctx, configs=configs)
    pd.testing.assert_frame_equal(a, b)
    assert back.config_dict() == fitted.config_dict()
    assert path.stat().st_size < 200_000


def test_refusals(tmp_path, sim):
    curves, _ = sim
    with pytest.raises(ValidationError, match="not fitted"):
        CurveModel("accuracy", True).predict_final(curves.head(3), 40)
    with pytest.raises(ValidationError, match="unknown method"):
        CurveModel("accuracy", True).fit(curves, method="advi")
    with pytest.raises(ValidationError, match="unknown transform"):
        CurveModel("accuracy", True, transform="sqrt")
    with pytest.raises(ValidationError, match="lacks column"):
        CurveModel("accuracy", True).fit(curves.drop(columns="dataset"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValidationError, match="cannot read"):
        CurveModel.load(bad)


@pytest.mark.slow
def test_nuts_fit_samples_cleanly_and_stays_calibrated(sim):
    curves, configs = sim
    train = curves[~curves["dataset"].isin(["d8", "d9"])]
    m = CurveModel("accuracy", True).fit(train, configs, method="nuts")
    assert m.diagnostics["status"] == "ok", m.diagnostics
    assert m._draws["beta"].shape[0] > 100
    test = curves[curves["dataset"].isin(["d8", "d9"])]
    truth = test.groupby("run_id")["value"].last()
    p = m.predict_final(test[test["step"] <= 10], 40, configs=configs)
    y = truth.reindex(p.index)
    assert 0.75 <= ((y >= p["q05"]) & (y <= p["q95"])).mean() <= 1.0
