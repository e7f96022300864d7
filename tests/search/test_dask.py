"""--executor dask://HOST:PORT: trials run on a Dask LocalCluster; only the driver writes."""

from __future__ import annotations

import pytest

from metaopt_bayes.search import optimize
from tests.search.conftest import FakeLearner
from tests.search.test_optimize import objective


def test_optimize_on_a_dask_local_cluster(wh, pool):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address  # tcp://127.0.0.1:PORT
        assert address.startswith("tcp://")
        res = optimize(
            wh,
            "d1",
            "toy",
            6,
            candidates=pool,
            objective=objective,
            learner=FakeLearner(),
            jobs=2,
            executor="dask://" + address[len("tcp://") :],
        )
    assert res.n_new == 6 and not res.interrupted
    assert len(res.trials) == 6 and not res.trials.duplicated(["x", "c"]).any()
    assert res.trials["status"].eq("finished").all()
