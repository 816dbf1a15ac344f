"""The one training loop every head trains through: epochs, early stopping, checkpoints, progress, metrics.

A head hands `fit` a Trainee: its model and optimiser, how to train one epoch on its own data, how to score
itself on dev, and hooks around evaluation (a learning-rate schedule, noise for the next epoch). Python owns
epochs, shuffling and I/O; each stretch of minibatches runs inside one compiled kernel.

A checkpoint holds the parameters, the optimiser's state and hyperparameters (so the learning rate a schedule
reached), the loop state (epoch, best score, the metrics so far) and the head's own state. Resuming restores
all of it and cuts `metrics.jsonl` back to the checkpoint's epochs, so every epoch is logged exactly once.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from winner.core.atomic import save_figure, write_dir_atomic, write_text_atomic
from winner.core.console import compiling_notice, console, progress_bar
from winner.core.interrupt import Interrupted, StopRequested, check_stop, stop_on_signals
from winner.core.mlp import WindowMLP, load_params_npz
from winner.core.optim import Optimizer
from winner.core.rundir import remove_checkpoint, training_run_dir
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
    overwrite: bool = False  # replace a run already in the directory
    keep_checkpoint: bool = False  # keep the checkpoint of a finished run (it is removed otherwise)

    @classmethod
    def of(cls, settings) -> LoopSettings:
        """The loop's part of a head's settings (winner.heads.settings.Settings)."""
        return cls(settings.epochs, settings.batch_size, settings.patience, settings.seed, settings.resume,
                   settings.quiet, settings.overwrite, settings.keep_checkpoint)


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
    chance_loss: float | None  # the loss of guessing: divergence is judged against it (None: only the first epoch's)

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
    batch = min(batch, n)  # a batch larger than the data is the data: the same updates, no outsized buffers
    order = np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)
    total = 0.0
    chunk = optimizer.average_stride(batch, CHUNK)
    with progress_bar(f"epoch {epoch}", n, quiet) as advance:
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
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
                      min(batch, k), 0)


class KeptWeights:
    """The weights a trainee evaluates, the optimiser's average if it keeps one (else the model's own), and
    saves when they scored best: evaluate inside `evaluating`, save inside `saving`."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    @contextlib.contextmanager
    def evaluating(self, model: WindowMLP, optimizer: Optimizer) -> Iterator[None]:
        averaged = optimizer.averaged()
        with model.use_params(averaged):
            yield
            # as evaluation left them (a head may refresh derived columns, e.g. the words' character vectors)
            self.arrays = {k: a.copy() for k, a in model.flat_params().items()} if averaged else {}

    def saving(self, model: WindowMLP) -> contextlib.AbstractContextManager:
        return model.use_params(self.arrays)


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
    kept: KeptWeights = field(default_factory=KeptWeights)

    @property
    def chance_loss(self) -> float | None:
        return chance_loss(self.model)

    def warm_up(self) -> None:
        self.model.check_ids(self.data.ids, self.data.feats)
        warm_up_windows(self.model, self.optimizer, self.data, self.batch_size)

    def train_epoch(self, epoch: int, quiet: bool) -> Epoch:
        return train_windows_epoch(self.model, self.optimizer, self.data, self.batch_size, self.seed, epoch, quiet)

    def evaluate(self) -> tuple[float, dict]:
        with self.kept.evaluating(self.model, self.optimizer):
            return self.evaluate_fn(), {}

    def after_evaluation(self, epoch: int, improved: bool) -> None:
        pass

    def save_best(self, state: LoopState) -> None:
        with self.kept.saving(self.model):
            self.save_best_fn(state)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def fit(trainee: Trainee, run_dir: Path, settings: LoopSettings) -> FitResult:
    """Train for up to settings.epochs, evaluate after each, keep the best, stop when patience runs out.

    Writes RUN_DIR/metrics.jsonl (one json line per epoch), RUN_DIR/checkpoint after every epoch (for --resume;
    removed at the end unless keep_checkpoint) and RUN_DIR/learning_curve.png. The run directory must be new,
    resumed or overwritten (winner.core.rundir). A diverging loss stops training with DivergenceError, a
    SIGINT / SIGTERM after the current stretch of batches with Interrupted; either way the best model and the
    last checkpoint are left as they were.
    """
    with training_run_dir(run_dir, settings.resume, settings.overwrite) as run_dir:
        state = LoopState()
        if settings.resume:
            state = restore_checkpoint(run_dir / "checkpoint", trainee)
            console.print(f"resuming from {run_dir / 'checkpoint'} after epoch {state.epoch}")
        # exactly the epochs of the state we start from: later ones (after the last checkpoint) are trained again
        write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in state.history))
        with stop_on_signals():
            try:
                return _train(trainee, run_dir, settings, state)
            except StopRequested as e:
                raise Interrupted(_interrupted_message(e, run_dir, state), e.signum) from None


def _train(trainee: Trainee, run_dir: Path, settings: LoopSettings, state: LoopState) -> FitResult:
    """fit()'s epochs, from `state` on."""
    t0 = time.perf_counter()
    with compiling_notice(settings.quiet):
        trainee.warm_up()
    compile_seconds = time.perf_counter() - t0
    check_stop()
    t_start = time.perf_counter()
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        if state.bad_epochs >= settings.patience:
            break
        lr = trainee.optimizer.lr
        t0 = time.perf_counter()
        trained = trainee.train_epoch(epoch, settings.quiet)
        train_seconds = time.perf_counter() - t0
        check_divergence(trained.loss, epoch, state, trainee.chance_loss, run_dir)
        score, extra = trainee.evaluate()
        improved = trainee.metric.better(score, state.best)
        if improved:
            state.best, state.best_epoch, state.bad_epochs = score, epoch, 0
        else:
            state.bad_epochs += 1
        state.epoch = epoch
        trainee.after_evaluation(epoch, improved)
        record = {"epoch": epoch, "loss": trained.loss, trainee.metric.name: score, **extra, **trained.extra,
                  "windows_per_s": trained.windows / train_seconds, "train_seconds": train_seconds,
                  "lr": lr, "next_lr": trainee.optimizer.lr, "best": improved}
        state.history.append(record)
        with (run_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if improved:
            trainee.save_best(state)
        finished = epoch == settings.epochs or state.bad_epochs >= settings.patience
        if not finished or settings.keep_checkpoint:
            save_checkpoint(run_dir / "checkpoint", trainee, state)
        console.print(
            f"epoch {epoch} | loss {trained.loss:.4f} | {trainee.metric.name} {trainee.metric.fmt.format(score)} | "
            f"{trained.windows / train_seconds / 1000:.1f}k windows/s | {train_seconds:.1f}s"
            + (" | saved best" if improved else ""))
        if not finished:
            check_stop()
    plot_learning_curve(state.history, trainee.metric, run_dir / "learning_curve.png")
    if not settings.keep_checkpoint:
        remove_checkpoint(run_dir)
    return FitResult(state, time.perf_counter() - t_start, compile_seconds, state.epoch < settings.epochs)


def kept_model(run_dir: Path, state: LoopState) -> str:
    """What a stopped run leaves, in words."""
    if state.best_epoch == 0:
        return "no model was kept (no epoch finished)"
    return f"the best model so far (epoch {state.best_epoch}) is kept in {run_dir / 'model'}"


def _interrupted_message(e: StopRequested, run_dir: Path, state: LoopState) -> str:
    if state.epoch == 0:
        return (f"stopped by {e}: no epoch finished, nothing to resume; to start again, rerun the command with "
                f"--overwrite")
    return (f"stopped by {e} during epoch {state.epoch + 1}: {kept_model(run_dir, state)}, the checkpoint after "
            f"epoch {state.epoch} in {run_dir / 'checkpoint'}; to continue, rerun the same command with --resume")


DIVERGENCE_FACTOR = 10.0  # a loss this many times chance level (or the first epoch's) is divergence


def check_divergence(loss: float, epoch: int, state: LoopState, chance: float | None, run_dir: Path) -> None:
    """Raise DivergenceError if the epoch's loss is non-finite or far above chance level or the first epoch's
    loss: such a model is worse than guessing and only gets worse (usually a learning rate far too large)."""
    limits = [DIVERGENCE_FACTOR * x for x in (chance, state.history[0]["loss"] if state.history else None)
              if x is not None and x > 0]
    if math.isfinite(loss) and not any(loss > limit for limit in limits):
        return
    what = f"loss {loss}" if not math.isfinite(loss) else f"loss {loss:.4g} is over {min(limits):.4g}"
    level = f", {DIVERGENCE_FACTOR:g}x chance level" if chance is not None and loss > DIVERGENCE_FACTOR * chance else ""
    raise DivergenceError(f"training diverged in epoch {epoch} ({what}{level}); try a smaller --lr. "
                          f"{kept_model(run_dir, state).capitalize()}")


def chance_loss(model: WindowMLP) -> float | None:
    """The cross-entropy of a uniform guess, log(outputs), for a softmax model; None for other losses."""
    return math.log(model.config.n_out) if model.config.loss == "softmax" and model.config.n_out > 1 else None


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
        mlp, loop, steps, lr = meta["mlp"], meta["loop"], int(meta["optimizer_steps"]), float(meta["optimizer"]["lr"])
        state = LoopState(**loop)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise WinnerError(f"{path}/state.json: cannot resume from it ({type(e).__name__}: {e})") from None
    if mlp != json.loads(json.dumps(model.config_dict())):  # compare as json: tuples become lists
        raise WinnerError(f"{path}: the checkpoint was made with other model settings; use a new --out "
                          "or --overwrite")
    model.set_params(load_params_npz(path / "params.npz"))
    optimizer.state = load_params_npz(path / "optimizer.npz")
    optimizer.steps, optimizer.lr = steps, lr  # lr: where a schedule had brought it
    trainee.load_state_dict(meta.get("head", {}))
    return state


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
