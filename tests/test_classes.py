"""The class-factored output (core/classes.py): exact normalisation over the vocabulary, the fast training step
against the reference (full logits, the core's ordinary backward), the frequency-binned partition."""

from __future__ import annotations

import numpy as np
import pytest

from winner.core import classes
from winner.core.layers import weight_offset
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer

V, P = 23, 3


def layout_and_model(hidden=(5,), direct=True, dropout=0.0, seed=0):
    counts = np.random.default_rng(seed).integers(0, 50, V)
    layout = classes.layout_of(classes.frequency_classes(counts, 5))
    C = layout.starts.shape[0] - 1
    config = MLPConfig(n_positions=P, vocab_size=V + 1, embed_dim=4, n_out=C + V, hidden=hidden,
                       direct=direct and bool(hidden), loss="none", dropout_input=dropout, dropout_hidden=dropout,
                       dtype="float64")
    return layout, WindowMLP(config, seed=seed)


def batch(seed=1, B=9):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V + 1, (B, P)).astype(np.int32), rng.integers(0, V, B).astype(np.int64)


def test_frequency_classes_are_equal_mass_bins_of_descending_counts():
    counts = np.array([100, 1, 50, 0, 30, 20, 1, 0])
    wc = classes.frequency_classes(counts, 4)
    assert wc.tolist() == [0, 3, 1, 3, 2, 3, 3, 3]  # mass before each word: 0, .99, .5, 1, .74, .89, .99, 1
    layout = classes.layout_of(wc)
    assert layout.starts.tolist() == [4, 5, 6, 7, 12]
    assert sorted(layout.word_col.tolist()) == list(range(4, 12))
    for w, c in enumerate(wc):
        assert layout.starts[c] <= layout.word_col[w] < layout.starts[c + 1]


@pytest.mark.parametrize("hidden,direct", [((5,), True), ((5,), False), ((), False), ((6, 4), True)])
def test_probabilities_sum_to_one_over_the_vocabulary(hidden, direct):
    layout, model = layout_and_model(hidden, direct)
    model.theta[...] = np.random.default_rng(3).normal(0, 2.0, model.theta.shape)  # far from uniform
    X, _ = batch(seed=4, B=50)
    logp = np.empty((50, V))
    classes.word_log_proba(model.predict_logits(X), layout, logp)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert np.abs(np.exp(logp).sum(axis=1) - 1.0).max() < 1e-12


def reference_step(model, layout, X, y, lr, seed, step):
    """Loss and one SGD step from the full logits and the core's ordinary backward."""
    Z, backprop = model.forward(X, train=True, seed=seed, step=step)
    dZ = np.zeros_like(Z)
    loss = classes.class_xent(Z, y, layout, 1.0 / len(y), dZ) / len(y)
    g = backprop(dZ)
    theta = model.theta - lr * g.theta
    E = model.E.copy()
    E[g.rows_E] -= lr * g.G_E
    return loss, theta, E


# hidden 37 with direct connections: a top matrix of 50 rows, several chunks of class_step's row loop (CHUNK_ROWS)
# and a last group of rows shorter than its four-row sweep
@pytest.mark.parametrize("hidden,direct,opt", [((5,), True, "sgd"), ((5,), False, "sgd"), ((), False, "sgd"),
                                               ((6, 4), True, "sgd"), ((5,), True, "adam"), ((37,), True, "sgd"),
                                               ((37,), True, "adam")])
def test_fast_step_equals_the_reference(hidden, direct, opt):
    layout, model = layout_and_model(hidden, direct, dropout=0.2)
    X, y = batch()
    lr = 0.1
    if opt == "sgd":
        loss_ref, theta_ref, E_ref = reference_step(model, layout, X, y, lr, seed=7, step=0)
    else:  # Adam's first step from zero moments: lr * sign(g) (to eps) wherever g != 0, lazy or not
        Z, backprop = model.forward(X, train=True, seed=7, step=0)
        dZ = np.zeros_like(Z)
        loss_ref = classes.class_xent(Z, y, layout, 1.0 / len(y), dZ) / len(y)
        g = backprop(dZ)
        theta_ref = model.theta - lr * g.theta / (np.abs(g.theta) + 1e-8 / np.sqrt(1e-3))
        E_ref = model.E.copy()
        E_ref[g.rows_E] -= lr * g.G_E / (np.abs(g.G_E) + 1e-8 / np.sqrt(1e-3))
    opt_ = Optimizer(opt, lr=lr, output_classes=layout)
    total = opt_.train_batches(model, X, np.zeros_like(X), y, np.arange(len(y), dtype=np.int64), 0, len(y),
                               len(y), seed=7)
    assert total / len(y) == pytest.approx(loss_ref, rel=1e-12)
    np.testing.assert_allclose(model.theta, theta_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.E, E_ref, rtol=1e-10, atol=1e-12)


def test_fast_training_is_deterministic_and_lowers_the_loss():
    runs = []
    for _ in range(2):
        layout, model = layout_and_model((5,), True, dropout=0.1)
        X, y = batch(seed=2, B=64)
        opt = Optimizer("adam", lr=0.05, output_classes=layout)
        losses = [opt.train_batches(model, X, np.zeros_like(X), y, np.arange(64, dtype=np.int64), 0, 64, 16, 3)
                  for _ in range(20)]
        runs.append((losses, model.theta.copy()))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][0][-1] < 0.7 * runs[0][0][0]


def lazy_adam_reference(model, layout, batches, lr, l2, seed):
    """Adam steps from the full logits and the core's ordinary backward, with the class step's lazy rule written
    out: the top layer's moments and weights move (and decay) only in the class columns and the blocks of the
    batch's target classes, the embeddings only in the rows used; hidden layers move everywhere."""
    theta, E = model.theta.copy(), model.E.copy()
    m, v, mE, vE = (np.zeros_like(a) for a in (theta, theta, E, E))
    L = len(model.sizes) - 2
    top = weight_offset(model.sizes, L)
    C = layout.starts.shape[0] - 1
    for t, (X, y) in enumerate(batches, start=1):
        ref = WindowMLP(model.config, seed=0)
        ref.theta[...], ref.E[...] = theta, E
        Z, backprop = ref.forward(X, train=True, seed=seed, step=t - 1)
        dZ = np.zeros_like(Z)
        classes.class_xent(Z, y, layout, 1.0 / len(y), dZ)
        g = backprop(dZ)
        cols = np.zeros(Z.shape[1], bool)
        cols[:C] = True
        for c in layout.word_class[y]:
            cols[layout.starts[c] : layout.starts[c + 1]] = True
        moves = np.ones(theta.shape, bool)
        moves[top:] = np.tile(cols, (len(theta) - top) // len(cols))
        grad = g.theta + l2 * theta * model.weight_mask
        step = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        m[moves] = 0.9 * m[moves] + 0.1 * grad[moves]
        v[moves] = 0.999 * v[moves] + 0.001 * grad[moves] ** 2
        theta[moves] -= step * m[moves] / (np.sqrt(v[moves]) + 1e-8)
        r = g.rows_E
        mE[r] = 0.9 * mE[r] + 0.1 * g.G_E
        vE[r] = 0.999 * vE[r] + 0.001 * g.G_E**2
        E[r] -= step * mE[r] / (np.sqrt(vE[r]) + 1e-8)
    return theta, E


@pytest.mark.parametrize("hidden,direct", [((5,), True), ((6, 4), False), ((37,), True)])
def test_lazy_adam_with_weight_decay_equals_the_reference_over_several_steps(hidden, direct):
    layout, model = layout_and_model(hidden, direct, dropout=0.2)
    batches = [batch(seed=s, B=9) for s in (1, 2, 3)]
    theta_ref, E_ref = lazy_adam_reference(model, layout, batches, lr=0.05, l2=0.01, seed=5)
    opt = Optimizer("adam", lr=0.05, l2=0.01, output_classes=layout)
    for X, y in batches:
        opt.train_batches(model, X, np.zeros_like(X), y, np.arange(len(y), dtype=np.int64), 0, len(y), len(y), 5)
    np.testing.assert_allclose(model.theta, theta_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.E, E_ref, rtol=1e-10, atol=1e-12)
