"""The numerical core: gradient checks, a numpy reference forward pass, a worked example, properties."""

from __future__ import annotations

import numpy as np
import pytest

from winner.core import gradcheck
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer


def reference_forward(model: WindowMLP, ids: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """A short vectorised numpy forward pass, written independently of the kernels."""
    c = model.config
    p = model.params
    X = np.concatenate([np.concatenate([p["E"][ids[:, j]], p["F"][feats[:, j]]], axis=1)
                        for j in range(c.n_positions)], axis=1)
    act = {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0)}
    H = X
    n_layers = len(c.hidden) + 1
    for l in range(n_layers):
        H = H @ p[f"W{l}"] + p[f"b{l}"]
        if l < n_layers - 1:
            H = act[c.activation](H)
    if c.direct:
        H = H + X @ p["D"]
    return H


def tiny(config_kw: dict, seed: int = 0, n: int = 7):
    cfg = MLPConfig(**{"n_positions": 5, "vocab_size": 20, "embed_dim": 4, "n_features": 6, "feature_dim": 3,
                       "n_out": 5, "hidden": (8,), "dtype": "float64", **config_kw})
    model = WindowMLP(cfg, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ids = rng.integers(0, cfg.vocab_size, (n, cfg.n_positions)).astype(np.int32)
    feats = rng.integers(0, cfg.n_features, (n, cfg.n_positions)).astype(np.int32)
    targets = rng.integers(0, cfg.n_out, n)
    return model, ids, feats, targets


@pytest.mark.parametrize("case", gradcheck.core_cases(), ids=lambda r: r.name)
def test_gradient_check_every_parameter(case):
    for p in case.params:
        assert p.worst < gradcheck.TOLERANCE, (
            f"{case.name}: {p.name} worst relative error {p.worst:.3e} at {p.worst_index} "
            f"(analytic {p.analytic}, numeric {p.numeric}), mean {p.mean:.3e}")
        assert p.untouched_rows_zero, f"{case.name}: rows of {p.name} no window uses have a nonzero gradient"


def test_gradcheck_catches_a_wrong_gradient():
    """The checker itself must fail a gradient that is off (here: a scaled output-bias gradient)."""
    model, ids, feats, targets = tiny({})

    def wrong():
        loss, grads = model.loss_and_grad(ids, feats, targets)
        grads["b1"] = grads["b1"] * 1.001
        return loss, grads

    report = gradcheck.check("wrong", model.params, wrong)
    worst = {p.name: p.worst for p in report.params}
    assert worst["b1"] > 1e-4 and not report.ok


def test_embedding_row_used_twice_gets_both_contributions():
    model, ids, feats, targets = tiny({}, n=1)
    ids[0] = [3, 7, 3, 9, 3]  # word 3 at three positions
    _, grads = model.loss_and_grad(ids, feats, targets)
    c = model.config
    # dL/dX of each position, recovered from a model whose E rows are distinct per position
    model2 = WindowMLP(MLPConfig(**{**c.__dict__, "vocab_size": 25}), seed=0)
    model2.set_params({**{k: v for k, v in model.params.items() if k != "E"},
                       "E": np.concatenate([model.E, model.E[[3, 3, 3, 7, 9]]])})
    distinct = np.array([[20, 23, 21, 24, 22]], dtype=np.int32)
    _, g2 = model2.loss_and_grad(distinct, feats, targets)
    np.testing.assert_allclose(grads["E"][3], g2["E"][20] + g2["E"][21] + g2["E"][22], rtol=1e-12, atol=1e-15)
    unused = np.setdiff1d(np.arange(c.vocab_size), [3, 7, 9])
    assert np.all(grads["E"][unused] == 0.0)


@pytest.mark.parametrize("kw", [{}, {"activation": "sigmoid", "hidden": (6, 4)}, {"activation": "relu"},
                                {"direct": True, "hidden": (5,)}, {"hidden": ()}])
def test_kernels_match_numpy_reference(kw):
    model, ids, feats, _ = tiny(kw)
    np.testing.assert_allclose(model.predict_logits(ids, feats), reference_forward(model, ids, feats),
                               rtol=1e-12, atol=1e-12)


def test_probabilities_sum_to_one():
    model, ids, feats, _ = tiny({})
    p = np.exp(model.predict_log_proba(ids, feats))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)


def test_batch_equals_row_by_row():
    model, ids, feats, _ = tiny({"dtype": "float32"}, n=50)
    whole = model.predict_logits(ids, feats, batch=16)
    rows = np.concatenate([model.predict_logits(ids[i : i + 1], feats[i : i + 1], batch=1) for i in range(50)])
    np.testing.assert_allclose(whole, rows, rtol=1e-5, atol=1e-6)


def test_worked_example_2_2_1_sigmoid_network():
    """The hand-derived example of the NER issue: x = (1, 1), y = 1, no biases, cross-entropy."""
    cfg = MLPConfig(n_positions=2, vocab_size=1, embed_dim=1, n_out=1, hidden=(2,), activation="sigmoid",
                    loss="sigmoid", dtype="float64")
    model = WindowMLP(cfg, E=np.array([[1.0]]))  # x = (E[0], E[0]) = (1, 1)
    theta1 = np.array([[0.45, 0.05], [-0.38, 0.74]])  # row j: weights into hidden unit j
    theta2 = np.array([-0.13, 0.95])
    model.set_params({"E": np.array([[1.0]]), "F": np.zeros((1, 0)), "W0": theta1.T, "b0": np.zeros(2),
                      "W1": theta2[:, None], "b1": np.zeros(1)})
    ids = np.zeros((1, 2), dtype=np.int32)
    z2, backprop = model.forward(ids)
    a1 = model.buffers(1)["acts"][2:4]
    np.testing.assert_allclose(theta1 @ [1.0, 1.0], [0.50, 0.36], atol=0.005)
    np.testing.assert_allclose(a1, [0.62, 0.59], atol=0.005)
    assert abs(z2[0, 0] - 0.48) < 0.005
    a2 = 1 / (1 + np.exp(-z2[0, 0]))
    assert abs(a2 - 0.62) < 0.005
    assert abs(-1 / a2 - (-1.62)) < 0.005  # dL/da2 for L = -log a2
    dz2 = a2 - 1.0
    assert abs(dz2 - (-0.38)) < 0.005
    loss, grads = model.loss_and_grad(ids, None, np.array([1]))
    assert abs(loss - (-np.log(a2))) < 1e-12
    # The example multiplies intermediates already rounded to 2 decimals (dL/dθ2 = -0.38 * 0.59 = -0.2242
    # -> -0.22, where the exact product is -0.2253): compare our exact gradients with the example's
    # arithmetic on our own intermediates rounded the same way, and exactly with the unrounded chain rule.
    r = np.round
    np.testing.assert_allclose(r(r(dz2, 2) * r(a1, 2), 2), [-0.24, -0.22])
    np.testing.assert_allclose(grads["W1"][:, 0], dz2 * a1, rtol=1e-12)
    da1 = theta2 * dz2
    np.testing.assert_allclose(r(theta2 * r(dz2, 2), 2), [0.05, -0.36])
    dz1 = da1 * a1 * (1 - a1)
    np.testing.assert_allclose(r(dz1, 2), [0.01, -0.09])
    np.testing.assert_allclose(r(np.outer(r(dz1, 2), [1.0, 1.0]), 2), [[0.01, 0.01], [-0.09, -0.09]])
    np.testing.assert_allclose(grads["W0"].T, np.outer(dz1, [1.0, 1.0]), rtol=1e-12)
    np.testing.assert_allclose(r(grads["W0"].T, 2), [[0.01, 0.01], [-0.09, -0.09]])
    # the one word is used at both positions: its gradient is dL/dx0 + dL/dx1
    dx = theta1.T @ (da1 * a1 * (1 - a1))
    np.testing.assert_allclose(grads["E"][0, 0], dx.sum(), rtol=1e-12)
    # the thinc-style backprop gives the same gradients as loss_and_grad
    g = backprop(np.array([[dz2]]))
    np.testing.assert_allclose(g.theta, model.grad, rtol=1e-12)


def test_sgd_step_is_theta_minus_lr_grad():
    model, ids, feats, targets = tiny({})
    lr = 0.05
    _, grads = model.loss_and_grad(ids, feats, targets)
    before = {k: v.copy() for k, v in model.params.items()}
    opt = Optimizer("sgd", lr=lr)
    opt.train_batches(model, ids, feats, targets, np.arange(len(targets)), 0, len(targets), len(targets), 0)
    for k, v in model.params.items():
        np.testing.assert_allclose(v, before[k] - lr * grads[k], rtol=1e-12, atol=1e-15, err_msg=k)


def test_adam_first_step_moves_each_touched_parameter_by_lr():
    """Adam's first bias-corrected step is lr * g/|g|; untouched embedding rows stay put (lazy rows)."""
    model, ids, feats, targets = tiny({})
    _, grads = model.loss_and_grad(ids, feats, targets)
    before = {k: v.copy() for k, v in model.params.items()}
    opt = Optimizer("adam", lr=0.01, eps=1e-12)
    opt.train_batches(model, ids, feats, targets, np.arange(len(targets)), 0, len(targets), len(targets), 0)
    for k, v in model.params.items():
        g = grads[k]
        expected = before[k] - 0.01 * np.sign(g) * (np.abs(g) > 1e-9)
        np.testing.assert_allclose(v, expected, atol=1e-6, err_msg=k)


def test_same_seed_gives_bit_identical_parameters():
    def train(seed: int) -> dict[str, np.ndarray]:
        model, ids, feats, targets = tiny({"dtype": "float32", "dropout_input": 0.3, "dropout_hidden": 0.2},
                                          seed=0, n=64)
        opt = Optimizer("adam", lr=0.01)
        order = np.random.default_rng(seed).permutation(64)
        opt.train_batches(model, ids, feats, targets, order, 0, 64, 8, seed)
        return model.to_arrays()

    a, b, c = train(1), train(1), train(2)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert any(not np.array_equal(a[k], c[k]) for k in a)


# SGD at batch 1 with lr 0.5 sat at the edge of chaos: a last-bit change in exp decided whether it converged.
@pytest.mark.parametrize("opt_name,lr,batch", [("sgd", 0.2, 1), ("adam", 0.02, 8)])
def test_tiny_set_is_overfit_to_100_percent(opt_name, lr, batch):
    model, ids, feats, targets = tiny({"dtype": "float32", "hidden": (32,)}, n=40)
    opt = Optimizer(opt_name, lr=lr)
    rng = np.random.default_rng(0)
    for _ in range(300):
        opt.train_batches(model, ids, feats, targets, rng.permutation(40), 0, 40, batch, 0)
    assert np.array_equal(model.predict_logits(ids, feats).argmax(axis=1), targets)


def test_dropout_is_inverted_and_off_at_inference():
    model, ids, feats, targets = tiny({"dropout_input": 0.5})
    a = model.predict_logits(ids, feats)
    b = model.predict_logits(ids, feats)
    assert np.array_equal(a, b)
    z_train, _ = model.forward(ids, feats, train=True, seed=3, step=1)
    assert not np.allclose(z_train, a)
    keep = model.buffers(len(ids))["keep"][: ids.size * 0 + len(ids) * model.config.n_in]
    assert set(np.unique(keep)) <= {0.0, 2.0}


def test_penalty_applies_to_weights_not_biases():
    model, ids, feats, targets = tiny({})
    _, g0 = model.loss_and_grad(ids, feats, targets)
    _, g1 = model.loss_and_grad(ids, feats, targets, l2=0.1)
    np.testing.assert_allclose(g1["W0"] - g0["W0"], 0.1 * model.params["W0"], rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(g1["b0"], g0["b0"])
    np.testing.assert_array_equal(g1["E"], g0["E"])


def test_ids_outside_the_tables_are_refused():
    model, ids, feats, targets = tiny({})
    bad = ids.copy()
    bad[0, 0] = model.config.vocab_size
    with pytest.raises(ValueError, match=r"word ids must lie in \[0, 20\)"):
        model.predict_logits(bad, feats)
    bad_feats = feats.copy()
    bad_feats[1, 2] = -1
    with pytest.raises(ValueError, match="feature ids"):
        model.loss_and_grad(ids, bad_feats, targets)


def test_raw_score_model_cannot_be_trained_on_targets():
    model, ids, feats, targets = tiny({"loss": "none", "n_out": 1})
    with pytest.raises(ValueError, match="loss 'none'"):
        model.loss_and_grad(ids, feats, targets)
    with pytest.raises(ValueError, match="loss 'none'"):
        Optimizer("sgd").train_batches(model, ids, feats, targets, np.arange(len(ids)), 0, len(ids), 2, 0)
