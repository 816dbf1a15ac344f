"""The training loop: divergence handling, early stopping, metrics lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from winner.core.loop import LoopSettings, LoopState, Metric, TrainData, WindowTraining, fit
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer
from winner.errors import DivergenceError


def _problem(n: int = 64):
    cfg = MLPConfig(n_positions=3, vocab_size=30, embed_dim=4, n_out=3, hidden=(8,))
    model = WindowMLP(cfg, seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 30, (n, 3)).astype(np.int32)
    data = TrainData(ids, np.zeros_like(ids), rng.integers(0, 3, n))
    return model, data


def test_nan_stops_training_and_keeps_the_last_good_model(tmp_path):
    model, data = _problem()
    saved: list[dict] = []
    epochs_seen = []

    def evaluate() -> float:
        epochs_seen.append(len(epochs_seen) + 1)
        if len(epochs_seen) == 1:
            return 0.5
        return 0.1

    def save_best(state: LoopState) -> None:
        saved.append({k: v.copy() for k, v in model.to_arrays().items()})
        model.E[:] = np.nan  # the next epoch's loss becomes nan, as a blown-up run would

    with pytest.raises(DivergenceError, match="diverged in epoch 2.*best model so far \\(epoch 1\\)"):
        fit(WindowTraining(model, Optimizer("sgd", lr=0.1), data, evaluate, Metric("dev F1"), save_best, 8), tmp_path,
            LoopSettings(epochs=5, batch_size=8, quiet=True))
    assert len(saved) == 1 and all(np.isfinite(v).all() for v in saved[0].values())
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]


def test_early_stopping_after_patience(tmp_path):
    model, data = _problem()
    scores = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.9])
    result = fit(WindowTraining(model, Optimizer("adam", lr=0.01), data, lambda: next(scores), Metric("dev F1"),
                                lambda state: None, 8), tmp_path,
                 LoopSettings(epochs=6, batch_size=8, patience=3, quiet=True))
    assert result.state.best_epoch == 2 and result.state.epoch == 5 and result.stopped_early
    assert (tmp_path / "learning_curve.png").is_file()


def test_lower_is_better_metric(tmp_path):
    model, data = _problem()
    scores = iter([300.0, 250.0, 260.0])
    result = fit(WindowTraining(model, Optimizer("sgd", lr=0.1), data, lambda: next(scores),
                                Metric("valid perplexity", higher_is_better=False), lambda state: None, 8), tmp_path,
                 LoopSettings(epochs=3, batch_size=8, quiet=True))
    assert result.state.best == 250.0 and result.state.best_epoch == 2


def test_finished_run_removes_its_checkpoint_unless_kept(tmp_path):
    for keep, out in ((False, tmp_path / "removed"), (True, tmp_path / "kept")):
        model, data = _problem()
        fit(WindowTraining(model, Optimizer("sgd", lr=0.1), data, iter([0.1, 0.2, 0.3]).__next__, Metric("dev F1"),
                           lambda state: None, 8), out, LoopSettings(epochs=3, batch_size=8, quiet=True,
                                                                     keep_checkpoint=keep))
        assert (out / "checkpoint").exists() == keep
    meta = json.loads((tmp_path / "kept" / "checkpoint" / "state.json").read_text())
    assert meta["loop"]["epoch"] == 3


def test_a_loss_far_above_chance_is_divergence_and_the_last_good_model_stays(tmp_path):
    """A learning rate raised to 1e6 after epoch 1: the loss stays finite but is far above log(n_out)."""
    model, data = _problem()
    saved = []
    trainee = WindowTraining(model, Optimizer("sgd", lr=0.1), data, lambda: 0.5, Metric("dev F1"),
                             lambda state: saved.append(state.best_epoch), 8)
    trainee.after_evaluation = lambda epoch, improved: setattr(trainee.optimizer, "lr", 1e6)
    with pytest.raises(DivergenceError, match="diverged in epoch 2.*chance level.*best model so far \\(epoch 1\\)"):
        fit(trainee, tmp_path, LoopSettings(epochs=5, batch_size=8, quiet=True))
    assert saved == [1]
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["loop"]["epoch"] == 1
