"""Real web and worker processes for the roulette's end-to-end and fault tests.

Each module gets one cluster (gunicorn A, `flask run` B and a worker) that
shares the suite's database and Redis; every test waits until the cluster is
quiet before the suite's per-test wipe.
"""

from __future__ import annotations

import pytest
from flask import Flask

from tests.roulette_procs import Cluster, module_cluster, scene_for_test, settle


@pytest.fixture(scope="module")
def cluster(app: Flask, database_url: str, redis_url: str, tmp_path_factory, request):
    # `app` is requested for its side effect: the schema is migrated.
    yield from module_cluster(app, database_url, redis_url, tmp_path_factory, request)


@pytest.fixture
def settled(app: Flask, cluster: Cluster) -> None:
    settle(app)


@pytest.fixture(autouse=True)
def clean_state(settled, clean_state):
    """The suite's per-test wipe, once this module's processes are quiet."""
    return clean_state


@pytest.fixture
def scene(app: Flask, cluster: Cluster, clean_state):
    yield from scene_for_test(app, cluster)
