"""`winner sweep PIPELINE.toml`: a hyperparameter search on Ray Tune (see winner.scale.sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from winner.cli.common import cli_errors
from winner.core.console import console


@cli_errors
def sweep(
    pipeline: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A pipelines/*.toml recipe.")],
    grid: Annotated[list[str] | None, typer.Option(help="KEY=V1,V2,...: try every value (repeatable).")] = None,
    random: Annotated[list[str] | None, typer.Option(help="KEY=LO:HI or KEY=LO:HI:log: draw a value per trial "
                                                          "(repeatable).")] = None,
    samples: Annotated[int, typer.Option("-n", "--samples", min=1, help="Trials per grid point (random draws).")
                       ] = 1,
    workers: Annotated[int, typer.Option(min=0, help="Trials at once (0: one per CPU Ray has).")] = 0,
    address: Annotated[str | None, typer.Option(help="Ray cluster to use (auto, ray://host:port); default: "
                                                     "start Ray on this machine.")] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep directory (default runs/sweep-NAME); re-running with "
                                                  "the same one resumes.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random draws (each trial keeps the pipeline's seed).")
                    ] = 0,
) -> None:
    """Train one run per configuration on Ray Tune, stop hopeless ones early (ASHA), rank them on the dev
    metric: OUT/results.csv and .json, best first, and OUT/best.toml for `winner run`. Needs the 'ray' extra."""
    from winner.scale.sweep import parse_grid, parse_random, run_sweep

    out = out or Path("runs") / f"sweep-{pipeline.stem}"
    rows = run_sweep(pipeline, parse_grid(grid or []), parse_random(random or []), samples, workers or None,
                     address, out, seed)
    metric = next(k for k in rows[0] if k.startswith("best ") and k != "best epoch")
    for r in rows:
        console.print(f"{r['trial']}  {metric} {r[metric]:.4f} (epoch {r['best epoch']} of {r['epochs']}"
                      f"{'' if r['finished'] else ', stopped early'})  "
                      + " ".join(f"{k}={v}" for k, v in r["config"].items()))
    console.print(f"{len(rows)} trials; table in {out / 'results.csv'}, best configuration in {out / 'best.toml'}")
