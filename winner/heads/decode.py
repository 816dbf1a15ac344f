"""Decoding a sentence's per-token tag scores into one tag sequence: Viterbi under hard transition constraints
(which tag may follow which, from the tag scheme), so that IOB/IOBES predictions are always well formed, and
with a sentence-level model's learned transition and start scores added (crf.py). A whole batch of sentences
decodes in one call (decode_batch), and its tag ids become output tag strings by one array lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from winner.core.fastmath import FAST
from winner.data.conll import convert_tags


@njit(cache=True, fastmath=FAST, error_model="numpy")
def viterbi(logp, allowed, start_ok, end_ok, out):
    """Best tag sequence under hard transition constraints (viterbi_scored without learned transitions)."""
    T = logp.shape[1]
    viterbi_scored(logp, np.zeros((T, T)), np.zeros(T), allowed, start_ok, end_ok, out)


@njit(cache=True, fastmath=FAST, error_model="numpy")
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


@njit(cache=True, fastmath=FAST, error_model="numpy")
def decode_batch(logp, offsets, A, start, allowed, start_ok, end_ok, argmax_only, out):
    """Every sentence of a batch in one call: sentence k is rows offsets[k]:offsets[k+1] of logp (N, T) and of
    out (N,) int32. Each is decoded as viterbi_scored decodes it alone (a word-level model passes zero A and
    start), or by per-token argmax if argmax_only."""
    for k in range(offsets.shape[0] - 1):
        a, b = offsets[k], offsets[k + 1]
        if argmax_only:
            for t in range(a, b):
                out[t] = np.argmax(logp[t])
        else:
            viterbi_scored(logp[a:b], A, start, allowed, start_ok, end_ok, out[a:b])


def conversion_table(tags: Sequence[str], src: str, dst: str) -> np.ndarray:
    """(T+1, T, T+1) object array: [prev, cur, next] is the tag, in scheme `dst`, of a token tagged tags[cur] in
    `src` between tags[prev] and tags[next] (index T: the sentence's edge). Whether convert_tags starts, ends
    or touches an entity at a token depends only on its neighbours' tags, so the table gives its output for
    any sequence."""
    T = len(tags)
    table = np.empty((T + 1, T, T + 1), dtype=object)
    for p in range(T + 1):
        for c in range(T):
            for n in range(T + 1):
                seq = [tags[i] for i in (p, c, n) if i < T]
                table[p, c, n] = convert_tags(seq, src, dst)[int(p < T)]
    return table


def tag_strings(path: np.ndarray, offsets: np.ndarray, table: np.ndarray) -> list[str]:
    """The output tags of decoded ids `path` (sentences cut at `offsets`) through a conversion_table."""
    if not len(path):
        return []
    T = table.shape[1]
    lengths = np.diff(offsets)
    prev = np.concatenate(([T], path[:-1]))
    nxt = np.concatenate((path[1:], [T]))
    prev[offsets[:-1][lengths > 0]] = T
    nxt[offsets[1:][lengths > 0] - 1] = T
    return table[prev, path, nxt].tolist()
