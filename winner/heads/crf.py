"""Sentence-level log-likelihood (Collobert et al. 2011, §3.3.2): a learned tag-transition matrix A and start
scores added to the window scores, so a tag path's score is start[y_0] + sum_t (Z[t, y_t] + A[y_(t-1), y_t]).

The loss of a sentence is logadd over all paths minus the gold path's score; the log-partition comes from the
forward algorithm (log-sum-exp), its gradient from forward-backward marginals: dL/dZ[t, j] = P(y_t = j) - [gold],
dL/dA[i, j] = sum_t P(y_(t-1) = i, y_t = j) - gold count. Tagging takes the best path by Viterbi (decode.py).

Window scores enter as the MLP's raw outputs; at inference the per-token log-softmax may stand in for them,
since it shifts every tag of a token by the same constant and so every path's score alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from winner.core.fastmath import FAST


@dataclass
class Transitions:
    """The sentence-level parameters: theta holds A (T, T) row-major, then start (T,), in float64."""

    theta: np.ndarray

    @classmethod
    def zeros(cls, n_tags: int) -> Transitions:
        return cls(np.zeros(n_tags * n_tags + n_tags))

    @classmethod
    def from_lists(cls, transitions: list, start: list) -> Transitions:
        A = np.asarray(transitions, dtype=np.float64)
        s = np.asarray(start, dtype=np.float64)
        T = s.shape[0]
        if s.ndim != 1 or A.shape != (T, T) or not (np.isfinite(A).all() and np.isfinite(s).all()):
            raise ValueError(f"transitions must be a finite (T, T) matrix and start (T,), got {A.shape}, {s.shape}")
        return cls(np.concatenate([A.ravel(), s]))

    @property
    def n_tags(self) -> int:
        return int(round((-1 + np.sqrt(1 + 4 * self.theta.shape[0])) / 2))

    @property
    def A(self) -> np.ndarray:
        T = self.n_tags
        return self.theta[: T * T].reshape(T, T)

    @property
    def start(self) -> np.ndarray:
        T = self.n_tags
        return self.theta[T * T :]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def logsumexp(v):
    m = v.max()
    if m == -np.inf:
        return m
    s = 0.0
    for x in v:
        s += np.exp(x - m)
    return m + np.log(s)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def forward_backward(Z, A, start, alpha, beta):
    """alpha[t, j] = log of the summed scores of paths over 0..t ending in j; beta[t, i] = the same for the
    paths over t+1..n-1 continuing from i. Returns the log-partition."""
    n, T = Z.shape
    col = np.empty(T)
    for j in range(T):
        alpha[0, j] = start[j] + Z[0, j]
    for t in range(1, n):
        for j in range(T):
            for i in range(T):
                col[i] = alpha[t - 1, i] + A[i, j]
            alpha[t, j] = Z[t, j] + logsumexp(col)
    beta[n - 1, :] = 0.0
    for t in range(n - 2, -1, -1):
        for i in range(T):
            for j in range(T):
                col[j] = A[i, j] + Z[t + 1, j] + beta[t + 1, j]
            beta[t, i] = logsumexp(col)
    return logsumexp(alpha[n - 1])


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sentence_nll(Z, y, A, start, scale, dZ, dA, dstart, alpha, beta):
    """One sentence: returns logadd - gold score; sets dZ (n, T) and adds into dA, dstart, all times `scale`."""
    n, T = Z.shape
    log_z = forward_backward(Z, A, start, alpha, beta)
    gold = start[y[0]] + Z[0, y[0]]
    for t in range(1, n):
        gold += A[y[t - 1], y[t]] + Z[t, y[t]]
    for t in range(n):
        for j in range(T):
            dZ[t, j] = scale * np.exp(alpha[t, j] + beta[t, j] - log_z)
        dZ[t, y[t]] -= scale
    for j in range(T):
        dstart[j] += dZ[0, j]
    for t in range(1, n):
        for i in range(T):
            a = alpha[t - 1, i] - log_z
            for j in range(T):
                dA[i, j] += scale * np.exp(a + A[i, j] + Z[t, j] + beta[t, j])
        dA[y[t - 1], y[t]] -= scale
    return log_z - gold


@njit(cache=True, fastmath=FAST, error_model="numpy")
def batch_nll(Z, starts, y, A, start, scale, dZ, dA, dstart):
    """Sentences Z[starts[s]:starts[s+1]] of a batch: the summed losses; dZ set, dA and dstart zeroed and filled,
    every gradient times `scale` (1 / windows: a mean per window, as the word-level loss)."""
    T = Z.shape[1]
    dA[:, :] = 0.0
    dstart[:] = 0.0
    longest = 0
    for s in range(starts.shape[0] - 1):
        longest = max(longest, starts[s + 1] - starts[s])
    alpha = np.empty((longest, T))
    beta = np.empty((longest, T))
    Zs = np.empty((longest, T))
    dZs = np.empty((longest, T))
    total = 0.0
    for s in range(starts.shape[0] - 1):
        a, b = starts[s], starts[s + 1]
        n = b - a
        if n == 0:
            continue
        for t in range(n):
            for j in range(T):
                Zs[t, j] = Z[a + t, j]
        total += sentence_nll(Zs[:n], y[a:b], A, start, scale, dZs[:n], dA, dstart, alpha[:n], beta[:n])
        for t in range(n):
            for j in range(T):
                dZ[a + t, j] = dZs[t, j]
    return total


def sentence_loss(Z: np.ndarray, starts: np.ndarray, y: np.ndarray, crf: Transitions, scale: float,
                  grad: np.ndarray) -> tuple[float, np.ndarray]:
    """(summed loss, dZ) of the sentences of a batch; grad (like crf.theta) receives dL/dA and dL/dstart."""
    T = Z.shape[1]
    dZ = np.empty(Z.shape, np.float64)
    loss = batch_nll(Z, np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(y, np.int64), crf.A,
                     crf.start, float(scale), dZ, grad[: T * T].reshape(T, T), grad[T * T :])
    return float(loss), dZ
