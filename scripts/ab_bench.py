#!/usr/bin/env python
"""Compare the training speed of revisions of winner in ONE process, alternating them run by run.

On a shared machine, separate bench runs drift by more than the differences worth finding. Here each revision's
copy of the package is imported under its own name, every round times one pass of each (the order reversed every
other round), and the table gives each one's median rate and the median of its run-by-run ratio to the first.

    python scripts/ab_bench.py b5ee5d6 HEAD --work ner --batch 128
    python scripts/ab_bench.py HEAD . --work lm --batch 256 --threads 2      # ".": the working tree
    python scripts/ab_bench.py b5ee5d6 b5ee5d6 HEAD HEAD --batch 1     # each code twice: the spread of copies

A revision given twice is two copies of the same code (#1, #2). The gap between them is what two copies of one code
differ by (where their arrays and machine code land), which a difference between revisions must exceed to mean
anything.

The shapes are `winner bench`'s. Revisions from before the core/ layout are read too. A commit's copy is kept in
the temporary directory, so its numba cache is compiled once (a minute or two). In one process all revisions share
numba's threads and the BLAS library, so they also share the newest revision's BLAS thread setting (one thread
where its init() keeps it there).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import typer

import winner
from winner.core import runtime
from winner.core.bench import LM, LM_LR, NER, NER_LR
from winner.core.bench_common import windows_of, zipf_ids

ROOT = Path(__file__).resolve().parent.parent
COPIES = Path(tempfile.gettempdir()) / "winner-ab-bench"


def package_copy(rev: str, name: str) -> tuple[str, Path]:
    """(name, path) of revision `rev`'s package: "." is the imported winner (the working tree of an editable
    install); a commit's winner/ is copied to COPIES, its imports renamed to `name`."""
    if rev == ".":
        if Path(winner.__file__).parent != ROOT / "winner":
            raise typer.BadParameter(f"the imported winner is {winner.__file__}, not this tree's (pip install -e .)")
        return "winner", ROOT / "winner"
    found = subprocess.run(["git", "rev-parse", "--short=12", "--verify", f"{rev}^{{commit}}"], cwd=ROOT,
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise typer.BadParameter(f"{rev!r} is not a commit of {ROOT}", param_hint="REVS")
    sha = found.stdout.strip()
    parent = COPIES / f"{name}-{sha}"
    pkg = parent / name
    if not pkg.exists():  # a commit's copy is kept, and with it its numba cache
        shutil.rmtree(parent, ignore_errors=True)
        parent.mkdir(parents=True)
        tar = subprocess.run(["git", "archive", rev, "winner"], cwd=ROOT, check=True, capture_output=True).stdout
        with tarfile.open(fileobj=BytesIO(tar)) as archive:
            archive.extractall(parent, filter="data")
        (parent / "winner").rename(pkg)
        for path in pkg.rglob("*.py"):
            text = re.sub(r"\b(from|import) winner\b", rf"\1 {name}", path.read_text())
            path.write_text(re.sub(r"\bwinner\.(?=[a-z_])", f"{name}.", text))
    sys.path.insert(0, str(parent))
    return name, pkg


def trainer(name: str, pkg: Path, work: str, threads: int):
    """A fresh model and optimiser of revision `name` for the workload."""
    if (pkg / "core" / "mlp.py").exists():
        importlib.import_module(f"{name}.core.runtime").init()
        mlp, optim = (importlib.import_module(f"{name}.core.{m}") for m in ("mlp", "optim"))
    else:  # before the core/ layout: importing the kernels registered the BLAS
        importlib.import_module(f"{name}.kernels")
        mlp, optim = (importlib.import_module(f"{name}.{m}") for m in ("mlp", "optim"))
        mlp.set_threads(threads)
    if work == "lm":
        config = mlp.MLPConfig(n_positions=LM["positions"], vocab_size=LM["vocab"], embed_dim=LM["embed"],
                               n_out=LM["vocab"], hidden=(LM["hidden"],), direct=True)
        return mlp.WindowMLP(config, seed=0), optim.Optimizer("sgd", lr=LM_LR)
    config = mlp.MLPConfig(n_positions=NER["positions"], vocab_size=NER["vocab"], embed_dim=NER["embed"],
                           n_out=NER["classes"], hidden=(NER["hidden"],))
    return mlp.WindowMLP(config, seed=0), optim.Optimizer("sgd", lr=NER_LR)


def workload(work: str, batch: int, windows: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The bench's windows and targets: 65,536 NER windows (12,000 at batch 1), or 12 LM batches (8,192 contexts
    at most; 200 at batch 1)."""
    rng = np.random.default_rng(0)
    if work == "lm":
        n = windows or (200 if batch == 1 else min(8192, 12 * batch))
        w = windows_of(zipf_ids(rng, LM["vocab"], n + LM["positions"]), LM["positions"] + 1)[:n]
        return np.ascontiguousarray(w[:, :-1]), w[:, -1].astype(np.int64)
    n = windows or (12_000 if batch == 1 else 65_536)
    return windows_of(zipf_ids(rng, NER["vocab"], n), NER["positions"]), rng.integers(0, NER["classes"], n)


def digest(model) -> str:
    """The first 12 hex digits of the md5 of the model's weights and tables (theta, E, F in every revision)."""
    h = hashlib.md5()
    for name in ("theta", "E", "F"):
        h.update(np.ascontiguousarray(getattr(model, name)).tobytes())
    return h.hexdigest()[:12]


def main(revs: list[str], work: str = typer.Option("ner", help="ner or lm (the bench's shapes)."),
         batch: int = typer.Option(128, min=1), threads: int = typer.Option(1, min=1),
         rounds: int = typer.Option(20, min=3, help="Timed passes of each revision."),
         windows: int | None = typer.Option(None, min=1, help="Windows per pass (default: the bench's)."),
         ) -> None:
    """Median (and best) training rate of each revision, the median run-by-run ratio to the first one, and a digest
    of the parameters each one ends with (the same data, seed and number of passes: equal digests, equal bits)."""
    if work not in ("ner", "lm"):
        raise typer.BadParameter("choose ner or lm", param_hint="--work")
    runtime.init()
    ids, targets = workload(work, batch, windows)
    feats, order = np.zeros_like(ids), np.arange(len(targets), dtype=np.int64)
    labels = [rev if revs.count(rev) == 1 else f"{rev}#{revs[:i + 1].count(rev)}" for i, rev in enumerate(revs)]
    runs = []  # per revision given: (model, optimiser, rates); a revision given twice is two copies of its code
    for i, rev in enumerate(revs):
        model, opt = trainer(*package_copy(rev, f"winner_ab{i}"), work, threads)
        runs.append((model, opt, []))
    runtime.set_threads(threads)
    for model, opt, _ in runs:  # warm-up: compile or load, then one untimed pass
        opt.train_batches(model, ids, feats, targets, order, 0, len(targets), batch, 0)
    for r in range(rounds):
        for model, opt, rates in runs if r % 2 == 0 else runs[::-1]:
            t0 = time.perf_counter()
            opt.train_batches(model, ids, feats, targets, order, 0, len(targets), batch, 0)
            rates.append(len(targets) / (time.perf_counter() - t0))
    unit = "tokens/s" if work == "lm" else "windows/s"
    print(f"{work} training, batch {batch}, {threads} thread(s), {rounds} rounds of {len(targets)} windows")
    first = runs[0][2]
    for label, (model, _, rates) in zip(labels, runs, strict=True):
        ratio = [a / b for a, b in zip(rates, first, strict=True)]
        q1, q3 = np.quantile(ratio, [0.25, 0.75])
        print(f"{label:>12}  {statistics.median(rates):>10,.0f} {unit} (best {max(rates):,.0f})  ratio to {labels[0]}: "
              f"{statistics.median(ratio):.3f} (quartiles {q1:.3f}-{q3:.3f})  parameters {digest(model)}")


if __name__ == "__main__":
    typer.run(main)
