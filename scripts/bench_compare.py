#!/usr/bin/env python
"""Compare two groups of `scripts/bench.py --out` reports, row by row, against the noise inside each group.

    python scripts/bench_compare.py before-*.json vs after-*.json

Run the two versions' benches alternately (before, after, after, before, ...) on the same machine, each report
one run. Per row (workload, batch, threads) the table gives each group's median over its reports, the ratio
after / before, and the noise: the larger of the two groups' spreads, max / min - 1 over the reports of one
version. A ratio that falls below 1 by more than that noise is a slowdown the bench can see; one inside it is not.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import typer


def rows_of(path: Path) -> dict[tuple[str, int, int], float]:
    """{(workload, batch, threads): winner's figure} of one report."""
    try:
        rows = json.loads(path.read_text())["rows"]
        return {(r["workload"], int(r["batch"]), int(r["threads"])): float(r["winner"])
                for r in rows if r.get("winner") is not None}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise typer.BadParameter(f"{path}: not a bench.py --out report ({e})") from e


def spread(values: list[float]) -> float:
    """max / min - 1: how far apart the runs of one version landed."""
    return max(values) / min(values) - 1.0


def main(reports: list[str] = typer.Argument(..., help="Reports of the version before, the word vs, then the "
                                                         "reports of the version after (bench.py --out files).")
         ) -> None:
    """Print, per row both groups have, the medians, the ratio after / before and the noise within the groups."""
    if reports.count("vs") != 1 or reports[0] == "vs" or reports[-1] == "vs":
        raise typer.BadParameter("give the reports before, then vs, then the reports after", param_hint="REPORTS")
    cut = reports.index("vs")
    before, after = [Path(r) for r in reports[:cut]], [Path(r) for r in reports[cut + 1:]]
    groups = [[rows_of(p) for p in before], [rows_of(p) for p in after]]
    keys = [k for k in groups[0][0] if all(k in rows for group in groups for rows in group)]
    if not keys:
        raise typer.BadParameter("the two groups have no row in common", param_hint="REPORTS")
    print(f"{len(before)} report(s) before, {len(after)} after; ratio = after / before of the medians; "
          "noise = the larger spread (max/min - 1) within one version")
    print(f"{'workload':<26} {'batch':>5} {'thr':>3} {'before':>10} {'after':>10} {'ratio':>6} {'noise':>6}  verdict")
    for key in keys:
        figures = [[rows[key] for rows in group] for group in groups]
        medians = [statistics.median(f) for f in figures]
        ratio = medians[1] / medians[0]
        noise = max(spread(f) for f in figures)
        verdict = "slower" if ratio < 1 - noise else "faster" if ratio > 1 + noise else "within noise"
        workload, batch, threads = key
        print(f"{workload:<26} {batch:>5} {threads:>3} {medians[0]:>10,.0f} {medians[1]:>10,.0f} {ratio:>6.3f} "
              f"{noise:>6.1%}  {verdict}")


if __name__ == "__main__":
    typer.run(main)
