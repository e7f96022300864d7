"""Meta-feature values checked against independent computations (scipy / sklearn / pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.decomposition import PCA
from sklearn.metrics import mutual_info_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from warehouse.errors import ValidationError
from warehouse.metafeatures import compute_meta_features, discretize


def _mf(df: pd.DataFrame, target: str = "target", task: str = "classification") -> dict:
    out = compute_meta_features(df, target, task)
    assert out["name"].is_unique
    assert np.isfinite(out["value"]).all()
    assert (out["compute_s"] >= 0).all()
    return dict(zip(out["name"], out["value"], strict=True))


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_wine(as_frame=True).frame


def test_groups_and_long_form(wine):
    out = compute_meta_features(wine, "target", "classification")
    assert list(out.columns) == ["name", "value", "method", "compute_s"]
    assert set(out["method"]) == {"general", "statistical", "info_theory", "landmarking"}


def test_general_counts(wine):
    mf = _mf(wine)
    assert mf["n_instances"] == 178
    assert mf["n_features"] == 13
    assert mf["n_numeric"] == 13 and mf["n_categorical"] == 0
    assert mf["n_classes"] == 3
    assert mf["dimensionality"] == pytest.approx(13 / 178)
    counts = wine["target"].value_counts()
    assert mf["majority_class_ratio"] == pytest.approx(counts.max() / 178)
    assert mf["minority_class_ratio"] == pytest.approx(counts.min() / 178)
    assert mf["missing_ratio"] == 0


def test_missing_and_categorical_columns():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=200),
            "b": rng.normal(size=200),
            "color": rng.choice(["red", "green", "blue"], size=200),
            "target": rng.choice(["yes", "no"], size=200),
        }
    )
    df.loc[rng.choice(200, 30, replace=False), "a"] = np.nan
    df.loc[rng.choice(200, 10, replace=False), "color"] = None
    mf = _mf(df)
    features = df.drop(columns="target")
    assert mf["missing_ratio"] == pytest.approx(features.isna().to_numpy().mean())
    assert mf["rows_with_missing_ratio"] == pytest.approx(features.isna().any(axis=1).mean())
    assert mf["n_numeric"] == 2 and mf["n_categorical"] == 1
    assert "landmark_1nn" in mf and 0 <= mf["landmark_1nn"] <= 1


def test_skewness_kurtosis_match_scipy(wine):
    mf = _mf(wine)
    x = wine.drop(columns="target").to_numpy()
    skew = st.skew(x, axis=0, bias=False)
    kurt = st.kurtosis(x, axis=0, bias=False)
    assert mf["skewness_mean"] == pytest.approx(skew.mean(), rel=1e-9)
    assert mf["skewness_sd"] == pytest.approx(skew.std(ddof=1), rel=1e-9)
    assert mf["kurtosis_mean"] == pytest.approx(kurt.mean(), rel=1e-9)
    assert mf["kurtosis_sd"] == pytest.approx(kurt.std(ddof=1), rel=1e-9)


def test_correlation_and_pca_match_pandas_and_sklearn():
    df = load_breast_cancer(as_frame=True).frame
    mf = _mf(df)
    x = df.drop(columns="target")
    corr = x.corr().to_numpy()
    iu = np.triu_indices_from(corr, k=1)
    assert mf["mean_abs_correlation"] == pytest.approx(np.abs(corr[iu]).mean(), rel=1e-9)
    pca = PCA().fit(StandardScaler().fit_transform(x))
    expected = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= 0.95) + 1)
    assert mf["pca_95_components"] == expected
    assert mf["pca_95_ratio"] == pytest.approx(expected / x.shape[1])


def test_information_theory_matches_scipy_and_sklearn(wine):
    mf = _mf(wine)
    y = wine["target"].to_numpy()
    h_y = st.entropy(np.bincount(y), base=2)
    assert mf["class_entropy"] == pytest.approx(h_y)
    assert mf["normalized_class_entropy"] == pytest.approx(h_y / np.log2(3))
    # independent: bin with numpy's histogram edges, MI from sklearn (nats → bits)
    h_x, mi = [], []
    for c in wine.columns.drop("target"):
        v = wine[c].to_numpy()
        edges = np.linspace(v.min(), v.max(), 11)
        codes = np.clip(np.digitize(v, edges[1:-1]), 0, 9)
        np.testing.assert_array_equal(codes, discretize(v))
        h_x.append(st.entropy(np.bincount(codes), base=2))
        mi.append(mutual_info_score(codes, y) / np.log(2))
    assert mf["mean_feature_entropy"] == pytest.approx(np.mean(h_x))
    assert mf["mean_mutual_information"] == pytest.approx(np.mean(mi))
    assert mf["noise_to_signal_ratio"] == pytest.approx((np.mean(h_x) - np.mean(mi)) / np.mean(mi))


def test_landmark_1nn_matches_sklearn_cross_validation(wine):
    mf = _mf(wine)
    x = wine.drop(columns="target").to_numpy()
    y = wine["target"].to_numpy()
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    # the scaler is fitted on each training fold only (no validation-fold leakage)
    knn = make_pipeline(StandardScaler(), KNeighborsClassifier(1))
    expected = cross_val_score(knn, x, y, cv=cv).mean()
    leaky = StandardScaler().fit_transform(x)
    assert mf["landmark_1nn"] != pytest.approx(
        cross_val_score(KNeighborsClassifier(1), leaky, y, cv=cv).mean()
    )
    assert mf["landmark_1nn"] == pytest.approx(expected)
    for name in ("landmark_stump", "landmark_naive_bayes", "landmark_lda"):
        assert 0 < mf[name] <= 1
    # LDA separates wine almost perfectly, a stump cannot
    assert mf["landmark_lda"] > mf["landmark_stump"]


def test_regression_dataset():
    df = load_diabetes(as_frame=True).frame
    mf = _mf(df, task="regression")
    assert mf["n_classes"] == 0
    assert "class_entropy" not in mf and "target_entropy" in mf
    assert {"landmark_1nn", "landmark_stump", "landmark_linear"} <= set(mf)
    assert mf["landmark_linear"] > mf["landmark_stump"] - 0.5  # R² values, finite


def test_pmlb_datasets_match_their_index(pmlb_dir):
    index = pd.read_csv(pmlb_dir.parent / "index.csv").set_index("dataset")
    for name in ["analcatdata_boxing1", "1028_SWD", "monk1"]:
        if not (pmlb_dir / f"{name}.tsv.gz").exists():
            continue
        df = pd.read_csv(pmlb_dir / f"{name}.tsv.gz", sep="\t")
        task = index.loc[name, "task"]
        mf = _mf(df, task=task)
        assert mf["n_instances"] == index.loc[name, "n_instances"]
        assert mf["n_features"] == index.loc[name, "n_features"]
        if task == "classification":
            assert mf["n_classes"] == index.loc[name, "n_classes"]


def test_bad_input_is_one_line_error(wine):
    with pytest.raises(ValidationError, match="'nope'"):
        compute_meta_features(wine, "nope", "classification")
    with pytest.raises(ValidationError, match="task"):
        compute_meta_features(wine, "target", "clustering")
    bad = wine.copy()
    bad.loc[5, "target"] = np.nan
    with pytest.raises(ValidationError, match="row 5"):
        compute_meta_features(bad, "target", "classification")
