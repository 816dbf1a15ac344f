"""`winner sweep PIPELINE.toml`: one training run per configuration on Ray Tune, chosen on the dev metric only.

Each trial runs the pipeline's train steps with the trial's values applied as `winner run --set` would, in its
own run directory (OUT/trials/ID), and reports every epoch's dev metric from that run's own metrics.jsonl, so
ASHA can stop hopeless trials early. The table (OUT/results.csv and .json, best first) and OUT/best.toml, the
pipeline with the best values written in (`winner run OUT/best.toml` retrains it with the same seed and so the
same dev score), come from those run directories. Test data is never read. A re-run with the same OUT resumes
the sweep: finished trials are kept, unfinished ones continue from their run's checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
import tomllib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import tomli_w

from winner.cli.pipeline import load_pipeline, referenced_variables
from winner.cli.steps import STEPS
from winner.core import runtime
from winner.core.atomic import open_atomic, write_text_atomic
from winner.core.console import console
from winner.errors import WinnerError
from winner.heads.settings import settings_fields
from winner.scale.cluster import connect, require_ray, threads_per_worker

# The dev metric each head's training loop writes to metrics.jsonl, and which way is better.
HEAD_METRICS = {"ner": ("dev F1", "max"), "score": ("dev F1", "max"), "lm": ("valid perplexity", "min")}


@dataclass(frozen=True)
class RandomRange:
    """A --random range: lo:hi (uniform; whole numbers if both are) or lo:hi:log (log-uniform)."""

    lo: float
    hi: float
    integer: bool
    log: bool


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    grid = {}
    for item in items:
        key, _, values = item.partition("=")
        if not key or not values:
            raise WinnerError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        grid[key.strip()] = [v.strip() for v in values.split(",")]
    return grid


def parse_random(items: list[str]) -> dict[str, RandomRange]:
    ranges = {}
    for item in items:
        key, _, spec = item.partition("=")
        parts = spec.split(":")
        try:
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
                raise ValueError
            lo, hi = float(parts[0]), float(parts[1])
        except ValueError:
            raise WinnerError(f"--random expects KEY=LO:HI or KEY=LO:HI:log, got {item!r}") from None
        integer = all(p.strip().lstrip("-").isdigit() for p in parts[:2])
        if not lo < hi or (len(parts) == 3 and lo <= 0):
            raise WinnerError(f"--random {item}: needs LO < HI (and LO > 0 for log)")
        ranges[key.strip()] = RandomRange(lo, hi, integer, len(parts) == 3)
    return ranges


def as_text(value) -> str:
    """A sampled value as `--set` text; repr keeps every bit of a float, so best.toml reproduces the trial."""
    return repr(value) if isinstance(value, float) else str(value)


def train_head(pipeline: Path) -> str:
    """The head (ner, score, lm) of the pipeline's train step; a sweep needs exactly one."""
    _, _, steps = load_pipeline(pipeline, {})
    heads = [kind.split()[0] for kind, _ in steps if STEPS[kind].settings is not None]
    if len(heads) != 1:
        raise WinnerError(f"{pipeline}: a sweep needs exactly one train step, found {len(heads)}")
    return heads[0]


def run_trial(config: dict, pipeline: str, out: str, cwd: str, threads: int, metric: str) -> None:
    """A Tune trial: train in a thread, report each epoch's dev metric as metrics.jsonl grows."""
    from ray import tune

    os.chdir(cwd)  # Tune starts trials in their own directory; the pipeline's relative paths need this one
    run_dir = Path(out) / "trials" / tune.get_context().get_trial_id()
    overrides = {k: as_text(v) for k, v in config.items()} | {"out": str(run_dir)}
    if (run_dir / "checkpoint").exists():
        overrides["resume"] = "true"
    failed: list[BaseException] = []

    def train() -> None:
        try:
            runtime.set_threads(threads)  # numba's thread count is per thread: set it in the one that trains
            _, run_out, steps = load_pipeline(Path(pipeline), overrides)
            for kind, options in steps:
                if STEPS[kind].settings is not None:
                    STEPS[kind].run(options, run_out)
        except BaseException as e:  # re-raised in the trial's own thread below
            failed.append(e)

    worker = threading.Thread(target=train, daemon=True)
    worker.start()
    reported = 0
    while True:
        finished = not worker.is_alive()
        records = read_metrics(run_dir)
        for record in records[reported:]:
            tune.report({"score": record[metric], "epoch": record["epoch"]})
        reported = len(records)
        if finished:
            break
        time.sleep(0.5)
    if failed:
        raise failed[0]


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]  # a line being written is skipped


def search_space(grid: dict[str, list[str]], ranges: dict[str, RandomRange]) -> dict:
    from ray import tune

    space = {k: tune.grid_search(v) for k, v in grid.items()}
    for k, r in ranges.items():
        if r.integer and not r.log:
            space[k] = tune.randint(int(r.lo), int(r.hi) + 1)
        elif r.integer:
            space[k] = tune.lograndint(int(r.lo), int(r.hi) + 1)
        else:
            space[k] = (tune.loguniform if r.log else tune.uniform)(r.lo, r.hi)
    return space


def run_sweep(pipeline: Path, grid: dict[str, list[str]], ranges: dict[str, RandomRange], samples: int,
              workers: int | None, address: str | None, out: Path, seed: int = 0) -> list[dict]:
    """Run (or resume) the sweep; write the table and best.toml; return the rows, best first."""
    require_ray()
    if not grid and not ranges:
        raise WinnerError("nothing to sweep: give --grid KEY=V1,V2 or --random KEY=LO:HI")
    load_pipeline(pipeline, {k: v[0] for k, v in grid.items()} | {k: as_text(r.lo) for k, r in ranges.items()})
    metric, mode = HEAD_METRICS[train_head(pipeline)]
    ray, cpus, _ = connect(address, workers)
    n_parallel = workers or cpus
    threads = threads_per_worker(cpus, n_parallel)
    out = out.resolve()
    results = _fit(pipeline.resolve(), search_space(grid, ranges), samples, n_parallel, threads, out, metric, mode,
                   seed)
    rows = _rows(results, out, metric, mode)
    if not rows:
        raise WinnerError(f"no trial finished an epoch; see the trial errors under {out / 'tune'}")
    _write_table(rows, out)
    write_best_toml(pipeline, rows[0]["config"], out / "best.toml", out / "best")
    return rows


def _fit(pipeline: Path, space: dict, samples: int, n_parallel: int, threads: int, out: Path, metric: str,
         mode: str, seed: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    trainable = tune.with_resources(partial(run_trial, pipeline=str(pipeline), out=str(out), cwd=os.getcwd(),
                                            threads=threads, metric=metric), {"cpu": threads})
    experiment = out / "tune"
    if tune.Tuner.can_restore(str(experiment)):
        console.print(f"resuming the sweep in {experiment}")
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_errored=True)
    else:
        config = tune.TuneConfig(metric="score", mode=mode, num_samples=samples, max_concurrent_trials=n_parallel,
                                 scheduler=ASHAScheduler(grace_period=2, reduction_factor=2),
                                 search_alg=BasicVariantGenerator(random_state=seed))
        tuner = tune.Tuner(trainable, param_space=space, tune_config=config,
                           run_config=tune.RunConfig(storage_path=str(out), name="tune", verbose=1))
    return tuner.fit()


def _rows(results, out: Path, metric: str, mode: str) -> list[dict]:
    """One row per trial from its run directory's metrics.jsonl, best dev metric first."""
    rows = []
    for result in results:
        trial_id = result.metrics.get("trial_id")
        run_dir = out / "trials" / str(trial_id)
        records = read_metrics(run_dir) if trial_id else []
        if not records:
            continue
        pick = max if mode == "max" else min
        best = pick(records, key=lambda r: r[metric])
        rows.append({"trial": run_dir.name, "config": {k: as_text(v) for k, v in result.config.items()},
                     f"best {metric}": best[metric], "best epoch": best["epoch"], "epochs": len(records),
                     "finished": (run_dir / "summary.json").is_file(), "run_dir": str(run_dir)})
    sign = -1 if mode == "max" else 1
    rows.sort(key=lambda r: (sign * r[f"best {metric}"], r["trial"]))
    return rows


def _write_table(rows: list[dict], out: Path) -> None:
    write_text_atomic(out / "results.json", json.dumps(rows, indent=1) + "\n")
    keys = sorted({k for r in rows for k in r["config"]})
    columns = ["trial", *keys, *[k for k in rows[0] if k not in ("trial", "config")]]
    with open_atomic(out / "results.csv") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r["trial"], *[r["config"].get(k, "") for k in keys],
                        *[r[k] for k in columns[1 + len(keys):]]])


def write_best_toml(pipeline: Path, config: dict[str, str], path: Path, run_out: Path) -> None:
    """The pipeline with the trial's values written in where `--set` would put them, its run in `run_out`."""
    doc = tomllib.loads(pipeline.read_text(encoding="utf-8"))
    variables = {*doc.get("vars", {}), *referenced_variables(doc)}
    for key, value in config.items():
        if key in variables:
            doc.setdefault("vars", {})[key] = value
        for step in doc["step"]:
            settings = STEPS[step["run"]].settings
            if settings is not None and key in settings_fields(settings):
                step[key] = value
    doc["out"] = str(run_out)
    write_text_atomic(path, f"# The best configuration of a `winner sweep` of {pipeline}\n" + tomli_w.dumps(doc))
