"""Built-in model families: scikit-learn estimators, default search spaces, architecture.

Each :class:`Family` knows which tasks it supports, builds an estimator from a config
(:meth:`Family.make_estimator`), gives a default :class:`~metaopt_bayes.space.SearchSpace`
per task, and describes the *architecture* of a config (:meth:`Family.architecture`): the
structural descriptors that are logged in ``run_architecture`` (e.g. an MLP's ``n_layers``,
``width`` and ``activation``; a forest's ``n_estimators`` and ``max_depth``), plus
family-level descriptors every run carries: ``kind`` (the learner type) and ``ensemble``
(1 for tree ensembles).

Every estimator is wrapped in a preprocessing pipeline (:func:`make_pipeline`): numeric
features are median-imputed and standardized, categorical ones imputed and one-hot encoded.
scikit-learn is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from metaopt_bayes.space import SearchSpace
from warehouse.errors import NotFoundError, ValidationError

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Family:
    """A model family: estimator factory, default spaces and architecture descriptors."""

    name: str
    tasks: tuple[str, ...]
    _build: Callable[[dict[str, Any], str, int], Any]
    _spaces: Mapping[str, dict[str, Any]]
    _arch: Callable[[dict[str, Any]], dict[str, Any]]
    kind: str
    description: str = ""
    _defaults: Callable[[str, int | None], dict[str, Any]] | None = None
    #: hyperparameters that count training rows: their effect depends on the dataset's size
    #: (``min_samples_leaf=100`` is mild on 10,000 rows and leaves no split on 150), so the
    #: meta-learner encodes them relative to it (:class:`~metaopt_bayes.features.ParamSpec`)
    per_row: tuple[str, ...] = ()
    #: what a step of a stepwise fit counts (:mod:`metaopt_bayes.stepwise`: ``"epochs"`` of
    #: an MLP, boosting ``"iterations"``); None: the family trains in one go
    step_unit: str | None = None
    #: the steps of a full fit when the config does not say (scikit-learn's ``max_iter``)
    default_steps: int | None = None

    def supports(self, task: str) -> bool:
        return task in self.tasks

    def _check_task(self, task: str) -> None:
        if task not in self.tasks:
            raise ValidationError(
                f"model {self.name!r} does not support {task}; it supports {', '.join(self.tasks)}"
            )

    def default_space(self, task: str = "classification") -> SearchSpace:
        """The built-in search space of this family for ``task``."""
        self._check_task(task)
        return SearchSpace.from_dict(self._spaces[task])

    def default_config(
        self, task: str = "classification", n_features: int | None = None
    ) -> dict[str, Any] | None:
        """scikit-learn's default configuration as a point of :meth:`default_space`, or None.

        A default outside the space becomes the nearest point (``max_depth=None`` → the
        deepest allowed); data-dependent ones (``gamma='scale'``, ``max_features='sqrt'``)
        need ``n_features`` (features are standardized, so ``'scale'`` is ``1/n_features``).
        None when the family has no defaults or they do not validate in the space.
        """
        self._check_task(task)
        if self._defaults is None:
            return None
        space = self.default_space(task)
        cfg = self._defaults(task, n_features)
        for name, value in list(cfg.items()):
            p = space[name] if name in space.names else None
            if p is not None and p.kind in ("float", "int") and value is not None:
                cfg[name] = min(max(value, p.low), p.high)
        try:
            return space.validate(cfg)
        except ValidationError:
            return None

    def make_estimator(self, config: Mapping[str, Any], task: str, seed: int = 0) -> Any:
        """An unfitted scikit-learn estimator for ``config`` (no preprocessing)."""
        self._check_task(task)
        cfg = {k: v for k, v in config.items() if v is not None}
        return self._build(cfg, task, seed)

    def max_steps(self, config: Mapping[str, Any]) -> int | None:
        """The steps of a full fit of ``config`` (its ``max_iter``: epochs of an MLP, boosting
        iterations), or None for a family that trains in one go."""
        if self.step_unit is None:
            return None
        value = config.get("max_iter")
        return int(value) if value is not None else self.default_steps

    def architecture(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Architecture descriptors of ``config`` (numbers or strings; ``kind`` always)."""
        cfg = {k: v for k, v in config.items() if v is not None}
        return {"kind": self.kind, **self._arch(cfg)}


# ---------------------------------------------------------------------------------------
# estimator factories (lazy imports)


def _only(cfg: dict[str, Any], allowed: tuple[str, ...], family: str) -> dict[str, Any]:
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise ValidationError(f"model {family!r} has no parameter {unknown[0]!r}")
    return cfg


_HGB = (
    "learning_rate",
    "max_iter",
    "max_leaf_nodes",
    "max_depth",
    "min_samples_leaf",
    "l2_regularization",
    "max_features",
    "early_stopping",
)


def _hgb(cfg: dict[str, Any], task: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = (
        HistGradientBoostingClassifier
        if task == "classification"
        else HistGradientBoostingRegressor
    )
    return cls(random_state=seed, **_only(cfg, _HGB, "hist_gradient_boosting"))


_RF = (
    "n_estimators",
    "max_depth",
    "max_features",
    "min_samples_leaf",
    "min_samples_split",
    "bootstrap",
    "criterion",
)


def _rf(cfg: dict[str, Any], task: str, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    return cls(random_state=seed, n_jobs=1, **_only(cfg, _RF, "random_forest"))


def _logreg(cfg: dict[str, Any], task: str, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    cfg = _only(cfg, ("C", "class_weight", "max_iter", "tol"), "logistic_regression")
    if cfg.get("class_weight") == "none":
        cfg = {**cfg, "class_weight": None}
    return LogisticRegression(random_state=seed, **cfg)


def _ridge(cfg: dict[str, Any], task: str, seed: int) -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(random_state=seed, **_only(cfg, ("alpha",), "ridge"))


def _svc(cfg: dict[str, Any], task: str, seed: int) -> Any:
    from sklearn.svm import SVC, SVR

    allowed = ("C", "kernel", "gamma", "degree", "coef0", "epsilon", "max_iter", "tol")
    cfg = dict(_only(cfg, (*allowed, "probability"), "svc"))
    if task == "classification":
        # probability=True (Platt scaling, an internal 5-fold CV: ~5x slower) gives the run a
        # log-loss; without it ROC-AUC comes from the decision function and log-loss is absent
        cfg.pop("epsilon", None)
        return SVC(random_state=seed, **cfg)
    cfg.pop("probability", None)
    return SVR(**cfg)


def _knn(cfg: dict[str, Any], task: str, seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    cls = KNeighborsClassifier if task == "classification" else KNeighborsRegressor
    return cls(n_jobs=1, **_only(cfg, ("n_neighbors", "weights", "p"), "knn"))


_MLP = (
    "n_layers",
    "width",
    "activation",
    "alpha",
    "learning_rate_init",
    "batch_size",
    "max_iter",
    "early_stopping",
)


def _mlp(cfg: dict[str, Any], task: str, seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cfg = dict(_only(cfg, _MLP, "mlp"))
    n_layers, width = int(cfg.pop("n_layers", 1)), int(cfg.pop("width", 64))
    cls = MLPClassifier if task == "classification" else MLPRegressor
    return cls(hidden_layer_sizes=(width,) * n_layers, random_state=seed, **cfg)


# ---------------------------------------------------------------------------------------
# architecture descriptors


def _arch_hgb(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "ensemble": 1,
        "n_estimators": cfg.get("max_iter", 100),
        "max_leaf_nodes": cfg.get("max_leaf_nodes", 31),
        "max_depth": cfg.get("max_depth"),
    }


def _arch_rf(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "ensemble": 1,
        "n_estimators": cfg.get("n_estimators", 100),
        "max_depth": cfg.get("max_depth"),
    }


def _arch_linear(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"ensemble": 0}


def _arch_svc(cfg: dict[str, Any]) -> dict[str, Any]:
    kernel = cfg.get("kernel", "rbf")
    out: dict[str, Any] = {"ensemble": 0, "kernel": kernel}
    if kernel == "poly":
        out["degree"] = cfg.get("degree", 3)
    return out


def _arch_knn(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"ensemble": 0, "n_neighbors": cfg.get("n_neighbors", 5)}


def _arch_mlp(cfg: dict[str, Any]) -> dict[str, Any]:
    n_layers, width = int(cfg.get("n_layers", 1)), int(cfg.get("width", 64))
    return {
        "ensemble": 0,
        "n_layers": n_layers,
        "width": width,
        "activation": cfg.get("activation", "relu"),
        "n_hidden_units": n_layers * width,
    }


# ---------------------------------------------------------------------------------------
# default spaces (one dict per task; see metaopt_bayes.space for the format)


def _log(low: float, high: float, kind: str = "float") -> dict[str, Any]:
    return {"type": kind, "low": low, "high": high, "log": True}


_HGB_SPACE = {
    "learning_rate": _log(0.01, 0.5),
    "max_iter": _log(50, 300, "int"),
    "max_leaf_nodes": _log(8, 128, "int"),
    "min_samples_leaf": _log(2, 100, "int"),
    "l2_regularization": _log(1e-6, 10.0),
    "early_stopping": False,
}
_RF_SPACE = {
    "n_estimators": _log(20, 200, "int"),
    "max_depth": _log(2, 32, "int"),
    "max_features": {"type": "float", "low": 0.1, "high": 1.0},
    "min_samples_leaf": _log(1, 20, "int"),
    "bootstrap": [True, False],
}
_SVC_SPACE = {
    "C": _log(1e-3, 1e3),
    "kernel": ["rbf", "poly", "linear"],
    "gamma": {**_log(1e-4, 1.0), "condition": {"kernel": ["rbf", "poly"]}},
    "degree": {"type": "int", "low": 2, "high": 4, "condition": {"kernel": "poly"}},
    "max_iter": 20000,
}
_KNN_SPACE = {
    "n_neighbors": _log(1, 50, "int"),
    "weights": ["uniform", "distance"],
    "p": {"type": "int", "low": 1, "high": 2},
}
_MLP_SPACE = {
    "n_layers": {"type": "int", "low": 1, "high": 3},
    "width": _log(16, 256, "int"),
    "activation": ["relu", "tanh", "logistic"],
    "alpha": _log(1e-6, 1e-1),
    "learning_rate_init": _log(1e-4, 1e-1),
    "max_iter": 200,
    "early_stopping": True,
}


# scikit-learn's defaults in the coordinates of the spaces above (see Family.default_config)
def _hgb_defaults(task: str, p: int | None) -> dict[str, Any]:
    return {
        "learning_rate": 0.1,
        "max_iter": 100,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 0.0,
        "early_stopping": False,
    }


def _rf_defaults(task: str, p: int | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "n_estimators": 100,
        "max_depth": 10**6,
        "min_samples_leaf": 1,
        "bootstrap": True,
    }
    if task == "regression":
        cfg["max_features"] = 1.0
    elif p:
        cfg["max_features"] = max(1, int(p**0.5)) / p
    return cfg


def _svc_defaults(task: str, p: int | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"C": 1.0, "kernel": "rbf", "max_iter": 20000}
    if p:
        cfg["gamma"] = 1.0 / p
    if task == "regression":
        cfg["epsilon"] = 0.1
    return cfg


def _mlp_defaults(task: str, p: int | None) -> dict[str, Any]:
    return {
        "n_layers": 1,
        "width": 100,
        "activation": "relu",
        "alpha": 1e-4,
        "learning_rate_init": 1e-3,
        "max_iter": 200,
        "early_stopping": True,
    }


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "hist_gradient_boosting",
            TASKS,
            _hgb,
            {t: _HGB_SPACE for t in TASKS},
            _arch_hgb,
            kind="boosted_trees",
            description="Histogram gradient-boosted trees (LightGBM-style).",
            _defaults=_hgb_defaults,
            per_row=("min_samples_leaf",),
            step_unit="iterations",
            default_steps=100,
        ),
        Family(
            "random_forest",
            TASKS,
            _rf,
            {t: _RF_SPACE for t in TASKS},
            _arch_rf,
            kind="bagged_trees",
            description="Random forest of decision trees.",
            _defaults=_rf_defaults,
            per_row=("min_samples_leaf", "min_samples_split"),
        ),
        Family(
            "logistic_regression",
            ("classification",),
            _logreg,
            {
                "classification": {
                    "C": _log(1e-4, 1e3),
                    "class_weight": ["none", "balanced"],
                    "max_iter": 1000,
                }
            },
            _arch_linear,
            kind="linear",
            description="L2-regularized logistic regression.",
            _defaults=lambda task, p: {"C": 1.0, "class_weight": "none", "max_iter": 1000},
        ),
        Family(
            "ridge",
            ("regression",),
            _ridge,
            {"regression": {"alpha": _log(1e-4, 1e3)}},
            _arch_linear,
            kind="linear",
            description="L2-regularized linear regression.",
            _defaults=lambda task, p: {"alpha": 1.0},
        ),
        Family(
            "svc",
            TASKS,
            _svc,
            {
                "classification": _SVC_SPACE,
                "regression": {**_SVC_SPACE, "epsilon": _log(1e-3, 1.0)},
            },
            _arch_svc,
            kind="kernel",
            description="Support-vector machine (SVC / SVR) with rbf, poly or linear kernel.",
            _defaults=_svc_defaults,
        ),
        Family(
            "knn",
            TASKS,
            _knn,
            {t: _KNN_SPACE for t in TASKS},
            _arch_knn,
            kind="instance_based",
            description="k-nearest neighbours.",
            _defaults=lambda task, p: {"n_neighbors": 5, "weights": "uniform", "p": 2},
        ),
        Family(
            "mlp",
            TASKS,
            _mlp,
            {t: _MLP_SPACE for t in TASKS},
            _arch_mlp,
            kind="neural_net",
            description="Multi-layer perceptron: n_layers hidden layers of equal width.",
            _defaults=_mlp_defaults,
            step_unit="epochs",
            default_steps=200,
        ),
    )
}


def get_family(name: str) -> Family:
    """The family called ``name``, or NotFoundError listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise NotFoundError(
            f"unknown model {name!r}; built-in models: {', '.join(sorted(FAMILIES))}"
        ) from None


def make_pipeline(estimator: Any, numeric: list[str], categorical: list[str]) -> Any:
    """Preprocessing + ``estimator``: impute and standardize numerics, one-hot categoricals."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if numeric:
        transformers.append(
            (
                "num",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    pre = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("pre", pre), ("model", estimator)])
