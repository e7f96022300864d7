"""The meta-learner's PyMC graph: the collapsed likelihood as a PyTensor Op (numpy on the C
backend, numba for nutpie) and the hierarchical model built on it.

The model and why ``β_d`` is integrated out are in :mod:`metaopt_bayes.model`'s docstring;
the algebra of the collapsed likelihood is in :mod:`metaopt_bayes.update`.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def collapsed_loglik_op(S: np.ndarray, b: np.ndarray, c: np.ndarray, n: np.ndarray):
    """A PyTensor Op ``(μ (D,p), τ² (p,), σ² (D,)) → Σ_d log p(y_d | μ_d, τ, σ_d)``.

    Value and exact gradient come from :func:`metaopt_bayes.update.collapsed_loglik_grad`
    (batched numpy Cholesky over datasets) on PyTensor's C/Python backend, and from the numba
    kernel :func:`metaopt_bayes._numba_loglik.collapsed_loglik_grad_nb` when nutpie compiles
    the model with numba (registered through ``numba_funcify``; without it numba falls back to
    object mode, which made nutpie's compile hang). A hand-written Op is used because
    PyTensor's symbolic batched Cholesky and its gradient compiled slowly and evaluated ~100×
    slower (measured: 350 ms per gradient for 20 datasets × 17 basis terms on the C backend).
    """
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    from metaopt_bayes.update import collapsed_loglik_grad

    stats = tuple(np.ascontiguousarray(x, dtype=float) for x in (S, b, c, n))

    class _Grad(Op):
        collapsed_stats = stats

        def make_node(self, mu, tau2, sig2):
            ins = [pt.as_tensor_variable(x) for x in (mu, tau2, sig2)]
            return Apply(self, ins, [x.type() for x in ins])

        def perform(self, node, inputs, outputs):
            _, gm, gt, gs = collapsed_loglik_grad(*stats, *inputs)
            outputs[0][0], outputs[1][0], outputs[2][0] = gm, gt, gs

    grad_op = _Grad()

    class _LogLik(Op):
        collapsed_stats = stats

        def make_node(self, mu, tau2, sig2):
            ins = [pt.as_tensor_variable(x) for x in (mu, tau2, sig2)]
            return Apply(self, ins, [pt.dscalar()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = np.asarray(collapsed_loglik_grad(*stats, *inputs)[0])

        def grad(self, inputs, output_grads):
            g = output_grads[0]
            gm, gt, gs = grad_op(*inputs)
            return [g * gm, g * gt, g * gs]

    _register_numba(_LogLik, _Grad)
    return _LogLik()


def _register_numba(loglik_cls: type, grad_cls: type) -> None:
    """Give the two Op classes numba implementations (for nutpie's numba backend)."""
    try:
        from pytensor.link.numba.dispatch import numba_funcify
    except ImportError:  # pragma: no cover - numba missing: C backend only
        return

    @numba_funcify.register(loglik_cls)
    def _funcify_loglik(op, node=None, **kwargs):
        import numba

        from metaopt_bayes._numba_loglik import collapsed_loglik_grad_nb as kernel

        S, b, c, n = op.collapsed_stats

        @numba.njit
        def loglik(mu, tau2, sig2):
            return np.asarray(kernel(S, b, c, n, mu, tau2, sig2)[0])

        return loglik

    @numba_funcify.register(grad_cls)
    def _funcify_grad(op, node=None, **kwargs):
        import numba

        from metaopt_bayes._numba_loglik import collapsed_loglik_grad_nb as kernel

        S, b, c, n = op.collapsed_stats

        @numba.njit
        def grad(mu, tau2, sig2):
            _, gm, gt, gs = kernel(S, b, c, n, mu, tau2, sig2)
            return gm, gt, gs

        return grad


#: the population parameters of the graph (``Bz`` only with meta-features): what the learner
#: keeps of a fit and what its diagnostics cover
POPULATION_VARS = ("B0", "tau", "log_sigma", "log_sigma_mu", "log_sigma_sd", "Bz")


def build_pymc_model(
    S: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    n: np.ndarray,
    Z: np.ndarray,
    basis_names: list[str],
    meta_names: list[str],
    datasets: list[str],
    prior_tau: float = 1.0,
    prior_meta: float = 0.5,
    meta_rows: np.ndarray | None = None,
    sigma_floor: float = 0.0,
):
    """The collapsed hierarchical model: ``β_d`` integrated out (see :mod:`metaopt_bayes.model`).

    ``meta_rows`` (indices into the basis) are the terms whose population mean depends on the
    meta-features; the others share one population mean ``B0`` across datasets. Call
    :func:`metaopt_bayes.inference.configure_compile_cache` first (before PyTensor is imported)
    to keep compiled code across processes, as :meth:`MetaLearner.fit_frame` does.
    """
    import pymc as pm
    import pytensor.tensor as pt

    D = S.shape[0]
    q = Z.shape[1]
    coords = {"basis": basis_names, "dataset": datasets}
    if q > 1:
        coords["meta"] = meta_names[1:]
    rows = np.arange(S.shape[1]) if meta_rows is None else np.asarray(meta_rows, dtype=int)
    if q > 1:
        coords["meta_basis"] = [basis_names[i] for i in rows]
    with pm.Model(coords=coords) as model:
        B0 = pm.Normal("B0", 0.0, 1.0, dims="basis")
        if q > 1:
            Bz = pm.Normal("Bz", 0.0, prior_meta, dims=("meta_basis", "meta"))
            MU = Z[:, :1] * B0[None, :]
            MU = pt.inc_subtensor(MU[:, rows], pt.dot(pt.as_tensor(Z[:, 1:]), Bz.T))
        else:
            MU = pt.ones((D, 1)) * B0[None, :]
        tau = pm.HalfNormal("tau", prior_tau, dims="basis")
        ls_mu = pm.Normal("log_sigma_mu", -1.0, 1.0)
        ls_sd = pm.HalfNormal("log_sigma_sd", 0.5)
        if np.median(n) < 100:  # few runs per dataset: non-centered (avoids the funnel)
            ls_z = pm.Normal("log_sigma_z", 0.0, 1.0, dims="dataset")
            log_sigma = pm.Deterministic("log_sigma", ls_mu + ls_sd * ls_z, dims="dataset")
        else:
            log_sigma = pm.Normal("log_sigma", ls_mu, ls_sd, dims="dataset")

        op = collapsed_loglik_op(S, b, c, n)
        ll = op(MU, tau**2, pt.exp(2.0 * log_sigma) + sigma_floor**2)
        pm.Potential("marginal_loglik", ll)
    return model


def posterior_draws(
    posterior: Any, n_basis: int, n_meta: int, meta_rows: np.ndarray, max_draws: int
) -> dict[str, np.ndarray]:
    """The graph's population parameters as flat arrays over draws (chains stacked), at most
    ``max_draws`` of them evenly thinned: ``B`` (S, p, q) — ``B0`` in column 0, ``Bz`` in the
    ``meta_rows`` of the other columns —, ``tau``, ``log_sigma``, ``log_sigma_mu``,
    ``log_sigma_sd``."""

    def flat(name: str) -> np.ndarray:
        a = np.asarray(posterior[name].values, dtype=float)
        return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])

    B0 = flat("B0")
    S = B0.shape[0]
    B = np.zeros((S, n_basis, n_meta))
    B[:, :, 0] = B0
    if n_meta > 1:
        B[:, meta_rows, 1:] = flat("Bz")
    draws = {
        "B": B,
        "tau": flat("tau"),
        "log_sigma": flat("log_sigma"),
        "log_sigma_mu": flat("log_sigma_mu"),
        "log_sigma_sd": flat("log_sigma_sd"),
    }
    if max_draws < S:
        idx = np.linspace(0, S - 1, max_draws).round().astype(int)
        draws = {k: v[idx] for k, v in draws.items()}
    return draws
