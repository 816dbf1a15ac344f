"""Decoding a sentence's per-token tag scores into one tag sequence: Viterbi under hard transition constraints
(which tag may follow which, from the tag scheme), so that IOB/IOBES predictions are always well formed, and
with a sentence-level model's learned transition and start scores added (crf.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def viterbi(logp, allowed, start_ok, end_ok, out):
    """Best tag sequence under hard transition constraints (viterbi_scored without learned transitions)."""
    T = logp.shape[1]
    viterbi_scored(logp, np.zeros((T, T)), np.zeros(T), allowed, start_ok, end_ok, out)


@njit(cache=True)
def viterbi_scored(logp, A, start, allowed, start_ok, end_ok, out):
    """Best tag sequence by score start[y_0] + sum_t (logp[t, y_t] + A[y_(t-1), y_t]) under hard constraints.

    logp: (n, T) per-token scores; A: (T, T) transition scores; start: (T,); allowed: (T, T) bool, allowed[i, j]
    = tag j may follow i; start_ok / end_ok: (T,) bool; out: (n,) int32 best path. Falls back to per-token argmax
    if no path is valid.
    """
    n, T = logp.shape
    if n == 0:
        return
    NEG = -1e300
    score = np.empty((n, T))
    back = np.zeros((n, T), dtype=np.int32)
    for j in range(T):
        score[0, j] = logp[0, j] + start[j] if start_ok[j] else NEG
    for t in range(1, n):
        for j in range(T):
            best, arg = NEG, 0
            for i in range(T):
                if allowed[i, j] and score[t - 1, i] > NEG and score[t - 1, i] + A[i, j] > best:
                    best, arg = score[t - 1, i] + A[i, j], i
            score[t, j] = best + logp[t, j] if best > NEG else NEG
            back[t, j] = arg
    best, arg = NEG, -1
    for j in range(T):
        if end_ok[j] and score[n - 1, j] > best:
            best, arg = score[n - 1, j], j
    if arg < 0:
        for t in range(n):
            out[t] = np.argmax(logp[t])
        return
    out[n - 1] = arg
    for t in range(n - 1, 0, -1):
        out[t - 1] = back[t, out[t]]
