"""The training loop as plain functions: epochs, shuffling, early stopping, checkpoints, progress.

Every head trains through `fit`: it hands over its model, optimiser, window arrays and an `evaluate`
callback (dev F1, dev perplexity, ...). Python owns epochs, shuffling and I/O; each stretch of
minibatches runs inside one compiled kernel (kernels.train_batches).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from winner.core.atomic import save_figure, write_dir_atomic, write_text_atomic
from winner.core.console import console, progress_bar
from winner.core.mlp import WindowMLP, load_params_npz
from winner.core.optim import Optimizer
from winner.errors import DivergenceError, WinnerError

CHUNK = 16384  # windows per kernel call: the progress bar moves this often


@dataclass
class LoopSettings:
    epochs: int = 30
    batch_size: int = 32
    patience: int = 5  # stop after this many epochs without a better dev score
    seed: int = 0
    resume: bool = False
    quiet: bool = False
    # A checkpoint holds the parameters and Adam's moments (~400 MB with all GloVe words): write one at most
    # this often, and always after the last epoch, so saving does not rival training for time.
    checkpoint_seconds: float = 60.0


@dataclass
class TrainData:
    ids: np.ndarray  # (N, P) int32
    feats: np.ndarray  # (N, P) int32
    targets: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        self.ids = np.ascontiguousarray(self.ids, dtype=np.int32)
        self.feats = np.ascontiguousarray(self.feats, dtype=np.int32)
        self.targets = np.ascontiguousarray(self.targets, dtype=np.int64)


@dataclass
class Metric:
    """The dev score that decides early stopping and which model is kept."""

    name: str  # e.g. "dev F1"
    higher_is_better: bool = True
    fmt: str = "{:.4f}"

    def better(self, new: float, old: float | None) -> bool:
        if old is None:
            return True
        return new > old if self.higher_is_better else new < old


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)


@dataclass
class FitResult:
    state: LoopState
    seconds: float
    compile_seconds: float
    stopped_early: bool


def fit(model: WindowMLP, optimizer: Optimizer, data: TrainData, evaluate: Callable[[], float], metric: Metric,
        save_best: Callable[[LoopState], None], run_dir: Path, settings: LoopSettings,
        extra_log: Callable[[], dict] | None = None) -> FitResult:
    """Train for up to settings.epochs, evaluate after each, keep the best, stop when patience runs out.

    Writes RUN_DIR/metrics.jsonl (one json line per epoch), RUN_DIR/checkpoint (the latest state, for
    --resume) and RUN_DIR/learning_curve.png. A NaN/inf loss stops training with DivergenceError; the best
    model saved so far is left untouched.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "metrics.jsonl"
    state = LoopState()
    if settings.resume and (run_dir / "checkpoint").is_dir():
        state = restore_checkpoint(run_dir / "checkpoint", model, optimizer)
        console.print(f"resuming from {run_dir / 'checkpoint'} after epoch {state.epoch}")
    elif metrics_path.exists():
        metrics_path.unlink()

    model.check_ids(data.ids, data.feats)
    compile_seconds = warm_up(model, optimizer, data, settings.batch_size)
    n = data.targets.shape[0]
    t_start = last_checkpoint = time.perf_counter()
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        if state.bad_epochs >= settings.patience:
            break
        order = np.random.default_rng([settings.seed, epoch]).permutation(n).astype(np.int64)
        t0 = time.perf_counter()
        total = 0.0
        with progress_bar(f"epoch {epoch}", n, settings.quiet) as advance:
            for s in range(0, n, CHUNK):
                e = min(s + CHUNK, n)
                total += optimizer.train_batches(model, data.ids, data.feats, data.targets, order, s, e,
                                                 settings.batch_size, settings.seed)
                if not math.isfinite(total):
                    raise DivergenceError(
                        f"training diverged in epoch {epoch} (loss {total}); try a smaller --lr. "
                        f"The best model so far (epoch {state.best_epoch}) is kept in {run_dir}")
                advance(e - s)
        train_seconds = time.perf_counter() - t0
        score = evaluate()
        improved = metric.better(score, state.best)
        if improved:
            state.best, state.best_epoch, state.bad_epochs = score, epoch, 0
        else:
            state.bad_epochs += 1
        state.epoch = epoch
        record = {"epoch": epoch, "loss": total / n, metric.name: score, "windows_per_s": n / train_seconds,
                  "train_seconds": train_seconds, "best": improved, **(extra_log() if extra_log else {})}
        state.history.append(record)
        with metrics_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if improved:
            save_best(state)
        last_epoch = epoch == settings.epochs or state.bad_epochs >= settings.patience
        if last_epoch or time.perf_counter() - last_checkpoint >= settings.checkpoint_seconds:
            save_checkpoint(run_dir / "checkpoint", model, optimizer, state)
            last_checkpoint = time.perf_counter()
        console.print(
            f"epoch {epoch} | loss {total / n:.4f} | {metric.name} {metric.fmt.format(score)} | "
            f"{n / train_seconds / 1000:.1f}k windows/s | {train_seconds:.1f}s"
            + (" | saved best" if improved else ""))
    stopped_early = state.epoch < settings.epochs
    seconds = time.perf_counter() - t_start
    plot_learning_curve(state.history, metric, run_dir / "learning_curve.png")
    return FitResult(state, seconds, compile_seconds, stopped_early)


def warm_up(model: WindowMLP, optimizer: Optimizer, data: TrainData, batch: int) -> float:
    """Compile (or load from cache) the training kernels on a throwaway copy; returns the seconds taken."""
    import copy

    t0 = time.perf_counter()
    clone = copy.deepcopy(model)
    opt = copy.deepcopy(optimizer)
    k = min(2 * batch, data.targets.shape[0])
    order = np.arange(k, dtype=np.int64)
    opt.train_batches(clone, data.ids[:k], data.feats[:k], data.targets[:k], order, 0, k, batch, 0)
    return time.perf_counter() - t0


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, model: WindowMLP, optimizer: Optimizer, state: LoopState) -> None:
    """Parameters, optimiser state and loop state, written atomically."""

    def fill(tmp: Path) -> None:
        np.savez(tmp / "params.npz", **model.to_arrays())
        np.savez(tmp / "optimizer.npz", **optimizer.state)
        meta = {"loop": asdict(state), "optimizer": optimizer.hyperparams(), "optimizer_steps": optimizer.steps,
                "mlp": model.config_dict()}
        (tmp / "state.json").write_text(json.dumps(meta), encoding="utf-8")

    write_dir_atomic(path, fill)


def restore_checkpoint(path: Path, model: WindowMLP, optimizer: Optimizer) -> LoopState:
    """Load a checkpoint written by save_checkpoint into `model` and `optimizer`."""
    try:
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise WinnerError(f"{path}/state.json: cannot resume ({e})") from e
    if meta["mlp"] != json.loads(json.dumps(model.config_dict())):  # compare as json: tuples become lists
        raise WinnerError(f"{path}: the checkpoint was made with other model settings; use a new --out "
                          "or run without --resume")
    model.set_params(load_params_npz(path / "params.npz"))
    optimizer.state = load_params_npz(path / "optimizer.npz")
    optimizer.steps = int(meta["optimizer_steps"])
    return LoopState(**meta["loop"])


# ---------------------------------------------------------------- pictures


def plot_learning_curve(history: list[dict], metric: Metric, path: Path) -> None:
    """Training loss and the dev metric per epoch, side by side, as a PNG."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [h["loss"] for h in history], marker="o")
    a.set(xlabel="epoch", ylabel="training loss", title="training loss")
    b.plot(epochs, [h[metric.name] for h in history], marker="o", color="tab:green")
    b.set(xlabel="epoch", ylabel=metric.name, title=metric.name)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def write_json(path: Path, obj: dict) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")
