#!/usr/bin/env python
"""Benchmark winner's numba core against PyTorch on the CPU (same shapes, batch sizes, threads, same run).

Prints a table (winner, PyTorch, ratio, share of the numpy GEMM ceiling) or, with --json, the same figures as
JSON. Every figure is the median of --repeats (>= 3) timed runs after an untimed warm-up; the first call's time
(JIT compile or numba cache load) is reported on its own. Needs `pip install torch==2.13.0` (the `bench`
extra) unless --no-torch. Use --quick while developing; run the full suite on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

WORKLOADS = ("gemm", "ner", "tag", "lm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer windows/tokens per run (noisier, ~4x faster)")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout instead of the table")
    parser.add_argument("--out", type=Path, help="also write the JSON report to this file")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure, median reported (>= 3)")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch side (no ratios)")
    args = parser.parse_args(argv)

    from winner.bench import format_table, run

    workloads = tuple(w.strip() for w in args.only.split(",") if w.strip())
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload(s) {sorted(unknown)}; choose from {WORKLOADS}")
    if args.repeats < 3:
        parser.error("--repeats must be at least 3")
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            parser.error("PyTorch is not installed: pip install torch==2.13.0 (or pass --no-torch)")
    threads = tuple(int(t) for t in args.threads.split(","))
    report = run(quick=args.quick, threads=threads, repeats=args.repeats, use_torch=not args.no_torch,
                 workloads=workloads, progress=lambda s: print(f"... {s}", file=sys.stderr, flush=True))
    data = report.to_json()
    if args.out:
        args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
