"""The one training loop every head trains through: epochs, early stopping, checkpoints, progress, metrics.

A head hands `fit` a Trainee: its model and optimiser, how to train one epoch on its own data, how to score
itself on dev, and hooks around evaluation (a learning-rate schedule, noise for the next epoch). Python owns
epochs, shuffling and I/O; each stretch of minibatches runs inside one compiled kernel.

A checkpoint holds the parameters, the optimiser's state and hyperparameters (so the learning rate a schedule
reached), the loop state (epoch, best score, the metrics so far) and the head's own state. Resuming restores
all of it and cuts `metrics.jsonl` back to the checkpoint's epochs, so every epoch is logged exactly once.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from winner.core.atomic import save_figure, write_dir_atomic, write_text_atomic
from winner.core.console import compiling_notice, console, progress_bar
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
    # A checkpoint holds the parameters and Adam's moments (~400 MB with all GloVe words). Write one after every
    # epoch (0), or at most this often and always after the last epoch, so that saving does not rival training.
    checkpoint_seconds: float = 0.0


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
class Epoch:
    """What one epoch of training reports: the mean loss, how many windows it trained on, extra log fields."""

    loss: float
    windows: int
    extra: dict = field(default_factory=dict)


@dataclass
class FitResult:
    state: LoopState
    seconds: float
    compile_seconds: float
    stopped_early: bool

    def summary(self, seed: int, model_dir: Path) -> dict:
        """The fields every head's summary.json shares; heads add their score's name and their own."""
        s = self.state
        speeds = [h["windows_per_s"] for h in s.history]
        return {"best_epoch": s.best_epoch, "epochs_run": s.epoch, "stopped_early": self.stopped_early,
                "train_seconds": self.seconds, "compile_seconds": self.compile_seconds,
                "median_windows_per_s": float(np.median(speeds)) if speeds else None, "seed": seed,
                "model": str(model_dir)}


class Trainee(Protocol):
    """What fit() trains. Heads implement it; `WindowTraining` is the plain case (shuffled windows, one
    target each)."""

    model: WindowMLP
    optimizer: Optimizer
    metric: Metric

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the training kernels on throwaway copies."""

    def train_epoch(self, epoch: int, quiet: bool) -> Epoch:
        """One pass over the training data; a non-finite loss ends it early and is returned."""

    def evaluate(self) -> tuple[float, dict]:
        """The dev score that decides early stopping, and extra fields for the metrics line."""

    def after_evaluation(self, epoch: int, improved: bool) -> None:
        """Hook after each evaluation (a learning-rate schedule, the next epoch's noise)."""

    def save_best(self, state: LoopState) -> None:
        """Keep the model just evaluated: it is the best so far."""

    def state_dict(self) -> dict:
        """The head's own resumable state, as json (kept in checkpoints)."""

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict() returned."""


def train_windows_epoch(model: WindowMLP, optimizer: Optimizer, data: TrainData, batch: int, seed: int, epoch: int,
                        quiet: bool) -> Epoch:
    """Every window once in a (seed, epoch) shuffle, in minibatches; the mean loss per window."""
    n = data.targets.shape[0]
    order = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)
    total = 0.0
    with progress_bar(f"epoch {epoch}", n, quiet) as advance:
        for s in range(0, n, CHUNK):
            e = min(s + CHUNK, n)
            total += optimizer.train_batches(model, data.ids, data.feats, data.targets, order, s, e, batch, seed)
            if not math.isfinite(total):
                break
            advance(e - s)
    return Epoch(total / n, n)


def warm_up_windows(model: WindowMLP, optimizer: Optimizer, data: TrainData, batch: int) -> None:
    """Compile (or load from cache) the window training kernels on a throwaway copy."""
    clone, opt = copy.deepcopy(model), copy.deepcopy(optimizer)
    k = min(2 * batch, data.targets.shape[0])
    opt.train_batches(clone, data.ids[:k], data.feats[:k], data.targets[:k], np.arange(k, dtype=np.int64), 0, k,
                      batch, 0)


@dataclass
class WindowTraining:
    """The plain Trainee: shuffled windows with one target each, a dev score from a callback."""

    model: WindowMLP
    optimizer: Optimizer
    data: TrainData
    evaluate_fn: Callable[[], float]
    metric: Metric
    save_best_fn: Callable[[LoopState], None]
    batch_size: int = 32
    seed: int = 0

    def warm_up(self) -> None:
        self.model.check_ids(self.data.ids, self.data.feats)
        warm_up_windows(self.model, self.optimizer, self.data, self.batch_size)

    def train_epoch(self, epoch: int, quiet: bool) -> Epoch:
        return train_windows_epoch(self.model, self.optimizer, self.data, self.batch_size, self.seed, epoch, quiet)

    def evaluate(self) -> tuple[float, dict]:
        return self.evaluate_fn(), {}

    def after_evaluation(self, epoch: int, improved: bool) -> None:
        pass

    def save_best(self, state: LoopState) -> None:
        self.save_best_fn(state)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def fit(trainee: Trainee, run_dir: Path, settings: LoopSettings) -> FitResult:
    """Train for up to settings.epochs, evaluate after each, keep the best, stop when patience runs out.

    Writes RUN_DIR/metrics.jsonl (one json line per epoch), RUN_DIR/checkpoint (the latest state, for
    --resume) and RUN_DIR/learning_curve.png. A non-finite loss stops training with DivergenceError; the best
    model saved so far is left untouched.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / "metrics.jsonl"
    metric = trainee.metric
    state = LoopState()
    if settings.resume and (run_dir / "checkpoint").is_dir():
        state = restore_checkpoint(run_dir / "checkpoint", trainee)
        console.print(f"resuming from {run_dir / 'checkpoint'} after epoch {state.epoch}")
    # exactly the epochs of the state we start from: later ones (after the last checkpoint) are trained again
    write_text_atomic(metrics_path, "".join(json.dumps(h) + "\n" for h in state.history))

    t0 = time.perf_counter()
    with compiling_notice(settings.quiet):
        trainee.warm_up()
    compile_seconds = time.perf_counter() - t0
    t_start = last_checkpoint = time.perf_counter()
    checkpointed = state.epoch
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        if state.bad_epochs >= settings.patience:
            break
        lr = trainee.optimizer.lr
        t0 = time.perf_counter()
        trained = trainee.train_epoch(epoch, settings.quiet)
        train_seconds = time.perf_counter() - t0
        if not math.isfinite(trained.loss):
            raise DivergenceError(
                f"training diverged in epoch {epoch} (loss {trained.loss}); try a smaller --lr. "
                f"The best model so far (epoch {state.best_epoch}) is kept in {run_dir}")
        score, extra = trainee.evaluate()
        improved = metric.better(score, state.best)
        if improved:
            state.best, state.best_epoch, state.bad_epochs = score, epoch, 0
        else:
            state.bad_epochs += 1
        state.epoch = epoch
        trainee.after_evaluation(epoch, improved)
        record = {"epoch": epoch, "loss": trained.loss, metric.name: score, **extra, **trained.extra,
                  "windows_per_s": trained.windows / train_seconds, "train_seconds": train_seconds,
                  "lr": lr, "next_lr": trainee.optimizer.lr, "best": improved}
        state.history.append(record)
        with metrics_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if improved:
            trainee.save_best(state)
        last_epoch = epoch == settings.epochs or state.bad_epochs >= settings.patience
        if last_epoch or time.perf_counter() - last_checkpoint >= settings.checkpoint_seconds:
            save_checkpoint(run_dir / "checkpoint", trainee, state)
            last_checkpoint, checkpointed = time.perf_counter(), epoch
        console.print(
            f"epoch {epoch} | loss {trained.loss:.4f} | {metric.name} {metric.fmt.format(score)} | "
            f"{trained.windows / train_seconds / 1000:.1f}k windows/s | {train_seconds:.1f}s"
            + (" | saved best" if improved else ""))
    if state.epoch > checkpointed:
        save_checkpoint(run_dir / "checkpoint", trainee, state)
    plot_learning_curve(state.history, metric, run_dir / "learning_curve.png")
    return FitResult(state, time.perf_counter() - t_start, compile_seconds, state.epoch < settings.epochs)


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, trainee: Trainee, state: LoopState) -> None:
    """Parameters, optimiser state and hyperparameters, loop state and the head's state, written atomically."""
    model, optimizer = trainee.model, trainee.optimizer

    def fill(tmp: Path) -> None:
        np.savez(tmp / "params.npz", **model.to_arrays())
        np.savez(tmp / "optimizer.npz", **optimizer.state)
        meta = {"loop": asdict(state), "optimizer": optimizer.hyperparams(), "optimizer_steps": optimizer.steps,
                "mlp": model.config_dict(), "head": trainee.state_dict()}
        (tmp / "state.json").write_text(json.dumps(meta), encoding="utf-8")

    write_dir_atomic(path, fill)


def restore_checkpoint(path: Path, trainee: Trainee) -> LoopState:
    """Load a checkpoint written by save_checkpoint into the trainee; the loop state to continue from."""
    model, optimizer = trainee.model, trainee.optimizer
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
    optimizer.lr = float(meta["optimizer"]["lr"])  # where a schedule had brought it
    trainee.load_state_dict(meta.get("head", {}))
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
