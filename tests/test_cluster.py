"""A real two-node Ray cluster on this machine (loopback, one CPU per node) runs a tiny search via --address."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from nas.space import SPACES_DIR


@pytest.mark.slow
def test_tiny_search_on_a_two_node_cluster(tmp_path):
    from ray.cluster_utils import Cluster

    (tmp_path / "proxy.yaml").write_text("resolution: 16\nepochs: 1\ntrain_images: 256\nval_images: 128\n"
                                         "batch_size: 64\n")
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        r = subprocess.run([sys.executable, "-m", "nas", "search", "--budget", "3M", "--space",
                            str(SPACES_DIR / "tiny.yaml"), "--proxy", str(tmp_path / "proxy.yaml"), "--trials", "2",
                            "--name", "cluster", "--results", str(tmp_path / "results"), "--address", cluster.address,
                            "--no-confirm"],
                           env=env, capture_output=True, text=True, timeout=240)
    finally:
        cluster.shutdown()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Ray: 2 node(s)" in r.stdout and "2 at a time" in r.stdout
    df = pd.read_parquet(tmp_path / "results" / "cluster" / "trials.parquet")
    trained = df[(df["kind"] == "searched") & df["status"].isin(["completed", "early_stopped"])]
    assert len(trained) == 2 and (trained["madds_m"] <= 3.0).all()
