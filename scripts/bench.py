#!/usr/bin/env python
"""Benchmark winner's numba core against PyTorch on the CPU: the `winner bench` command (see --help).

    python scripts/bench.py                 # the full suite, 1 and 2 threads, with PyTorch
    python scripts/bench.py --quick --no-torch --only ner,tag
"""

from __future__ import annotations

import typer

from winner.cli.app import bench

if __name__ == "__main__":
    typer.run(bench)
