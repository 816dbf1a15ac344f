"""Run commands against a two-node Ray cluster on this machine (ray.cluster_utils.Cluster, as Ray's own tests
do): two nodes of 1 CPU each; ADDRESS in a command becomes the cluster's address.

    python scripts/two_ray_nodes.py "winner ner tag runs/conll corpus/ -o out.conll --address ADDRESS --workers 2"

Needs the `ray` extra. Shows how the same command runs on a real cluster: only --address changes.
"""

from __future__ import annotations

import subprocess
import sys
import time

from ray.cluster_utils import Cluster


def main(commands: list[str]) -> int:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    print(f"two nodes at {cluster.address}", flush=True)
    worst = 0
    try:
        for command in commands:
            t0 = time.perf_counter()
            code = subprocess.run(command.replace("ADDRESS", cluster.address), shell=True).returncode
            print(f"exit {code} in {time.perf_counter() - t0:.1f}s: {command}", flush=True)
            worst = max(worst, code)
    finally:
        cluster.shutdown()
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
