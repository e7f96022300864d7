"""Benchmark: time to compute every meta-feature group of a synthetic dataset.

The issue's bar: a 100,000 × 50 dataset in at most 10 s. Prints one row per dataset shape
with the time per group (the ``compute_s`` the warehouse stores, summed per group) and the
end-to-end wall time of :func:`warehouse.metafeatures.compute_meta_features`.

    PYTHONPATH=. python benchmarks/metafeatures_bench.py            # full table
    PYTHONPATH=. python benchmarks/metafeatures_bench.py --quick    # small smoke run

The data: ``n_numeric`` Gaussian features with a shared latent factor (so correlations and
PCA are non-trivial), a few skewed (log-normal) columns, 2 categorical columns, 1% missing
cells, and a 3-class target depending on two features.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def make_dataset(n_rows: int, n_features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_cat = min(2, max(n_features - 1, 0))
    n_num = n_features - n_cat
    latent = rng.normal(size=(n_rows, 1))
    x = 0.6 * latent + rng.normal(size=(n_rows, n_num))
    x[:, : max(n_num // 5, 1)] = np.exp(x[:, : max(n_num // 5, 1)])  # skewed columns
    df = pd.DataFrame(x, columns=[f"x{i}" for i in range(n_num)])
    for j in range(n_cat):
        df[f"c{j}"] = rng.choice(["a", "b", "c", "d"], size=n_rows)
    mask = rng.random((n_rows, n_num)) < 0.01
    df.iloc[:, :n_num] = df.iloc[:, :n_num].mask(mask)
    score = x[:, 0] + (x[:, 1] if n_num > 1 else 0)
    df["target"] = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes only (smoke run)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per shape (best is shown)")
    args = parser.parse_args()

    from warehouse.metafeatures import compute_meta_features

    shapes = (
        [(2_000, 10), (10_000, 20)]
        if args.quick
        else [
            (1_000, 10),
            (10_000, 50),
            (100_000, 50),
            (100_000, 200),
        ]
    )
    repeat = 1 if args.quick else args.repeat
    compute_meta_features(make_dataset(200, 5), "target", "classification")  # warm imports
    header = (
        f"{'rows':>8} {'feats':>5} {'general':>8} {'statist':>8} {'info':>8} "
        f"{'landmk':>8} {'total_s':>8} {'n_mf':>5} {'<=10s':>5}"
    )
    print(header)
    print("-" * len(header))
    for n_rows, n_features in shapes:
        df = make_dataset(n_rows, n_features)
        best, best_groups, n_mf = float("inf"), {}, 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = compute_meta_features(df, "target", "classification")
            wall = time.perf_counter() - t0
            if wall < best:
                best = wall
                best_groups = out.groupby("method")["compute_s"].sum().to_dict()
                n_mf = len(out)
        g = best_groups
        print(
            f"{n_rows:>8} {n_features:>5} {g.get('general', 0):>8.3f} "
            f"{g.get('statistical', 0):>8.3f} {g.get('info_theory', 0):>8.3f} "
            f"{g.get('landmarking', 0):>8.3f} {best:>8.3f} {n_mf:>5} "
            f"{'yes' if best <= 10 else 'NO':>5}"
        )


if __name__ == "__main__":
    main()
