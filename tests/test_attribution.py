"""Gradient x input attributions (winner.core.attribution) against finite differences, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from winner.core.attribution import attribute, log_probability_of, logit_of
from winner.core.mlp import MLPConfig, WindowMLP

EPS = 1e-6


def tiny(hidden: tuple[int, ...] = (6,), direct: bool = False, seed: int = 0) -> WindowMLP:
    config = MLPConfig(n_positions=3, vocab_size=7, embed_dim=4, n_out=3, hidden=hidden, n_features=4,
                       feature_dim=2, direct=direct, dropout_input=0.5, dropout_hidden=0.5, dtype="float64")
    return WindowMLP(config, seed=seed)


# word 2 twice in the first window, padding (0) at an edge: a shared row's two uses must both count
IDS = np.array([[2, 5, 2], [0, 1, 3], [6, 6, 4]], dtype=np.int32)
FEATS = np.array([[1, 2, 1], [0, 3, 2], [2, 2, 1]], dtype=np.int32)


def scores_at(model: WindowMLP, E: np.ndarray, F: np.ndarray, score_grad) -> np.ndarray:
    with model.use_params({"E": E, "F": F}):
        Z = model.predict_logits(IDS, FEATS)
    return score_grad(Z, 0)[0]


def directional_fd(model: WindowMLP, VE: np.ndarray, VF: np.ndarray, score_grad) -> np.ndarray:
    """Central difference of every window's score along (VE, VF) in the tables' space."""
    E, F = model.E.copy(), model.F.copy()
    up = scores_at(model, E + EPS * VE, F + EPS * VF, score_grad)
    down = scores_at(model, E - EPS * VE, F - EPS * VF, score_grad)
    return (up - down) / (2 * EPS)


def along(grad: np.ndarray, VE: np.ndarray, VF: np.ndarray) -> np.ndarray:
    """The analytic directional derivative: dX . (the direction's rows as each window reads them)."""
    d = VE.shape[1]
    return np.einsum("bpj,bpj->b", grad[:, :, :d], VE[IDS]) + np.einsum("bpj,bpj->b", grad[:, :, d:], VF[FEATS])


SCORES = {"logit": lambda: logit_of(np.array([2, 0, 1])), "log_probability": lambda: log_probability_of(
    np.array([1, 2, 0]))}


@pytest.mark.parametrize("score", sorted(SCORES))
@pytest.mark.parametrize("shape", [((6,), False), ((5, 4), False), ((6,), True)], ids=["h6", "h5-4", "direct"])
def test_input_gradient_equals_finite_difference_directional_derivative(score, shape):
    model = tiny(*shape)
    a = attribute(model, IDS, FEATS, SCORES[score]())
    rng = np.random.default_rng(1)
    VE, VF = rng.normal(size=model.E.shape), rng.normal(size=model.F.shape)
    numeric = directional_fd(model, VE, VF, SCORES[score]())
    np.testing.assert_allclose(along(a.grad, VE, VF), numeric, rtol=1e-7, atol=1e-9)
    # gradient x input summed over a window is the derivative along the input itself: d/dt s(tE, tF) at t = 1
    numeric_x = directional_fd(model, model.E.copy(), model.F.copy(), SCORES[score]())
    np.testing.assert_allclose(a.word.sum(axis=1) + a.feature.sum(axis=1), numeric_x, rtol=1e-7, atol=1e-9)


def test_contributions_plus_bias_reproduce_a_linear_models_score():
    model = tiny(hidden=())
    chosen = np.array([2, 0, 1])
    a = attribute(model, IDS, FEATS, logit_of(chosen))
    np.testing.assert_allclose(a.score, model.predict_logits(IDS, FEATS)[np.arange(3), chosen], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.rest, model.params["b0"][chosen], rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.word.sum(axis=1) + a.feature.sum(axis=1) + model.params["b0"][chosen], a.score,
                               rtol=0, atol=1e-12)


def test_chunks_give_the_same_attributions_and_dropout_is_off():
    """Chunks change only rounding: a one-row chunk takes the one-row product, whose fixed-order sum may differ
    from BLAS's in the last bit (the core promises a batch equals its rows one by one to rounding, test_core), so
    scores and attributions agree to 1e-12; the same call twice gives the same bits."""
    model = tiny()
    whole = attribute(model, IDS, FEATS, logit_of(np.array([2, 0, 1])))
    pieces = attribute(model, IDS, FEATS, logit_of(np.array([2, 0, 1])), chunk=2)
    for x, y in zip(whole, pieces, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(whole.score, model.predict_logits(IDS, FEATS)[np.arange(3), [2, 0, 1]])
    again = attribute(model, IDS, FEATS, logit_of(np.array([2, 0, 1])))
    for x, y in zip(whole, again, strict=True):
        np.testing.assert_array_equal(x, y)
