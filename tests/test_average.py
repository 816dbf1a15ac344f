"""A moving average of the weights (`--average`, every head): at 0 it changes nothing; on, the average is what
is evaluated and kept; the stretches it splits training into change no step; its counter for steps taken outside
the fused loop. (A tagger run with it resumes to the same bits: tests/test_chars.py.)"""

from __future__ import annotations

import copy
import math

import numpy as np

from winner.core.chars import CharOptimizer, CharWindowMLP
from winner.core.gradcheck import tiny_windows
from winner.core.loop import CHUNK, LoopSettings, Metric, TrainData, WindowTraining, fit, train_windows_epoch
from winner.core.mlp import MLPConfig
from winner.core.optim import Optimizer
from winner.data.vocab import Vocab
from winner.heads.characters import CharSpec, attach_words

N, BATCH = 96, 8


def char_model(seed: int = 0) -> CharWindowMLP:
    """A tiny character-window network: every kind of parameter (theta, E, F, the character CNN's)."""
    spec = CharSpec("abcdefgh", 3, 4, 3)
    config = MLPConfig(n_positions=3, vocab_size=10, embed_dim=2 + spec.filters, n_out=4, hidden=(5,), n_features=8,
                       feature_dim=2, dropout_input=0.2, dtype="float64")
    model = CharWindowMLP(config, spec.config(), seed=seed)
    attach_words(model, spec, Vocab(["<pad>", "<unk>", "ab", "cd", "abc", "h", "gg", "fade", "bead", "e"]))
    return model


def char_data(seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    ids, feats = tiny_windows(rng, N, 3, 10, 8)
    return TrainData(ids, feats, rng.integers(0, 4, N))


def run_fit(average_windows: float, tmp_path, epochs: int = 3) -> tuple[CharWindowMLP, CharOptimizer, list[dict]]:
    """fit() on the tiny model with a dev score that improves every epoch; what each save_best saw."""
    model, data = char_model(), char_data()
    optimizer = CharOptimizer("adam", lr=0.05, average_windows=average_windows)
    saved: list[dict] = []
    evaluated: list[dict] = []

    def evaluate() -> float:
        model.fill_vocabulary()  # as the tagger's evaluation does: the character columns from the weights used
        evaluated.append({k: a.copy() for k, a in model.flat_params().items()})
        return float(len(evaluated))

    trainee = WindowTraining(model, optimizer, data, evaluate, Metric("dev"),
                             lambda state: saved.append({k: a.copy() for k, a in model.flat_params().items()}),
                             BATCH, seed=1)
    fit(trainee, tmp_path / "run", LoopSettings(epochs=epochs, batch_size=BATCH, seed=1, quiet=True))
    assert len(saved) == epochs
    for s, e in zip(saved, evaluated, strict=True):
        for k in s:
            np.testing.assert_array_equal(s[k], e[k])  # what is kept is exactly what was scored
    return model, optimizer, saved


def test_no_average_trains_and_keeps_the_raw_weights_exactly_as_before(tmp_path):
    model, optimizer, saved = run_fit(0.0, tmp_path)
    assert optimizer.averaged() == {} and not any(k.startswith("avg_") for k in optimizer.state)
    assert optimizer.average_stride(BATCH, CHUNK) == CHUNK
    # the plain loop without fit(): the same epochs give the same bits
    plain, plain_opt, data = char_model(), CharOptimizer("adam", lr=0.05), char_data()
    for epoch in (1, 2, 3):
        train_windows_epoch(plain, plain_opt, data, BATCH, 1, epoch, True)
    plain.fill_vocabulary()
    for k, a in plain.flat_params().items():
        np.testing.assert_array_equal(saved[-1][k], a)
        np.testing.assert_array_equal(model.flat_params()[k], a)


def test_with_an_average_the_averaged_weights_are_evaluated_and_kept(tmp_path):
    model, optimizer, saved = run_fit(N / 2, tmp_path)
    avg = optimizer.averaged()
    assert set(avg) == {"theta", "E", "F", "char_theta"}
    for k in ("theta", "F", "char_theta"):
        np.testing.assert_array_equal(saved[-1][k], avg[k])
        assert not np.array_equal(saved[-1][k], model.flat_params()[k])  # the raw weights moved on
    word = model.word_dim  # the words' own columns are averaged, the character columns recomputed from them
    np.testing.assert_array_equal(saved[-1]["E"][:, :word], avg["E"][:, :word])
    with model.use_params(avg):
        model.fill_vocabulary()
        np.testing.assert_array_equal(saved[-1]["E"], model.E)
    assert optimizer.average_stride(BATCH, CHUNK) == BATCH  # 48 / 8 windows: it moved after every minibatch


def test_stretches_split_at_minibatch_boundaries_change_no_step():
    whole, parts = char_model(), char_model()
    opt_whole, opt_parts = CharOptimizer("adam", lr=0.05), CharOptimizer("adam", lr=0.05)
    data = char_data()
    order = np.random.default_rng(0).permutation(N).astype(np.int64)
    a = opt_whole.train_batches(whole, data.ids, data.feats, data.targets, order, 0, N, BATCH, 1)
    b = sum(opt_parts.train_batches(parts, data.ids, data.feats, data.targets, order, s, s + 2 * BATCH, BATCH, 1)
            for s in range(0, N, 2 * BATCH))
    assert math.isclose(a, b, rel_tol=1e-12) and opt_whole.steps == opt_parts.steps
    for k, x in whole.flat_params().items():
        np.testing.assert_array_equal(x, parts.flat_params()[k])


def test_average_stride_is_whole_minibatches_and_at_most_the_chunk():
    opt = Optimizer(average_windows=1000.0)
    assert opt.average_stride(32, CHUNK) == 96  # 1000 / 8 = 125 windows -> 3 minibatches
    assert opt.average_stride(200, CHUNK) == 200  # at least one minibatch
    assert Optimizer(average_windows=1e9).average_stride(32, CHUNK) == CHUNK


def test_steps_outside_the_fused_loop_move_the_average_every_eighth_time_constant():
    model, data = char_model(), char_data()
    opt = CharOptimizer("adam", lr=0.05, average_windows=80.0)  # moves every 10 windows
    for start in range(0, 24, 4):
        ids, feats = data.ids[start : start + 4], data.feats[start : start + 4]
        n_words = opt.stage_words(model, ids)
        Z, backprop = model.forward(ids, feats, train=True, seed=0, step=opt.steps)
        opt.step(model, backprop(np.ones_like(Z) / Z.size))
        opt.finish_words(model, ids, n_words)
        before = copy.deepcopy(opt.averaged())
        opt.count_windows(model, 4)
        moved = start + 4 in (12, 24)  # 12 >= 10: the first move (it starts the average); 24 = 12 + 12
        assert int(opt.state["avg_pending"]) == (0 if moved else (start + 4) % 12)
        if moved and before:
            rate = 1.0 - math.exp(-12 / 80.0)
            np.testing.assert_allclose(opt.averaged()["theta"], (1 - rate) * before["theta"] + rate * model.theta,
                                       rtol=1e-12)
    assert set(opt.averaged()) == {"theta", "E", "F", "char_theta"}
