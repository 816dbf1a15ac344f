"""Inference by first-layer lookup: the first layer is linear in the embeddings (Collobert et al. 2011), so each
(position, word) pair's contribution is computed once into a table and a window's first layer is a sum of rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from winner.core.blas import gemm
from winner.core.fastmath import FAST_ENTRY, activate_row, activation
from winner.core.layers import log_softmax_row, weight_offset
from winner.core.runtime import blas_threads
from winner.core.updates import number_row

NO_EXTRA = np.zeros((0, 0), np.float32)  # lookup_logits' G when the first layer has nothing beyond the table
# A table of fewer multiply-adds is built on one BLAS thread: after a threaded product OpenBLAS's idle threads
# spin for a while, and on the cores the parallel lookup kernel that follows needs.
TABLE_SPLIT_WORK = 1 << 30


@njit(cache=True)
def compact_rows(ids, start, slot, uniq, max_unique):
    """Number the distinct ids of windows start, start+1, ... in order of first use (slot[id] = number,
    uniq[number] = id), stopping before the window that would bring more than max_unique (a chunk always
    holds at least one window); returns (stop, U). slot: (V,) int32, all -1 on entry; local_ids resets it.
    """
    N, P = ids.shape
    U = 0
    b = start
    while b < N:
        new = 0
        for p in range(P):
            if slot[ids[b, p]] < 0:
                new += 1
        if U + new > max_unique and b > start:
            break
        for p in range(P):
            U = number_row(ids[b, p], slot, uniq, U)
        b += 1
    return b, U


@njit(cache=True)
def local_ids(ids, start, stop, slot, uniq, U, local):
    """local[b - start, p] = slot[ids[b, p]] for the windows numbered by compact_rows, then reset slot."""
    P = ids.shape[1]
    for b in range(start, stop):
        for p in range(P):
            local[b - start, p] = slot[ids[b, p]]
    for k in range(U):
        slot[uniq[k]] = -1


@njit(cache=True)
def first_layer_tables(E, F, W0, uniq, U, T, C, Eu):
    """Each (position, word) and (position, feature) pair's contribution to the first layer.

    T[u, p] = E[uniq[u]] @ W0[p*w : p*w+d] (>=U, P, H); C[p, f] = F[f] @ W0[p*w+d : (p+1)*w] (P, Vf, H),
    w = d + df. Eu: (>=U, d) scratch. A word's P rows are contiguous: consecutive windows of a text reuse
    them while they are in cache.
    """
    d = E.shape[1]
    df = F.shape[1]
    w = d + df
    P = T.shape[1]
    for u in range(U):
        for j in range(d):
            Eu[u, j] = E[uniq[u], j]
    for p in range(P):
        gemm(False, False, 1.0, Eu[:U], W0[p * w : p * w + d], 0.0, T[:U, p])
        if df > 0:
            gemm(False, False, 1.0, F, W0[p * w + d : (p + 1) * w], 0.0, C[p])


def fill_tables(E, F, W0, uniq, U, T, C, Eu) -> None:
    """first_layer_tables, on one BLAS thread when the table is small (TABLE_SPLIT_WORK); same bits either way."""
    work = U * E.shape[1] * T.shape[1] * T.shape[2]
    with blas_threads(1 if work < TABLE_SPLIT_WORK else None):
        first_layer_tables(E, F, W0, uniq, U, T, C, Eu)


# Parallel and cached: safe to load in any process once winner.core.runtime.init() has run (see runtime.py).
@njit(cache=True, parallel=True, fastmath=FAST_ENTRY, error_model="numpy")
def lookup_logits(local, feats, T, C, theta, WT, sizes, act, log_proba, out, G):
    """Logits (or log-probabilities) of windows whose first layer is a sum of table rows.

    local: (N, P) int32 indices into T's first axis; feats: (N, P) int32; T: (U, P', H0) with P' >= P (positions
    from P on are the caller's, added in G); C: (P', Vf, H0); G: (N, H0) more of each window's first layer (the
    context codes' share, winner.core.context), or (0, 0) for none;
    WT: theta with every layer above the first stored transposed (so each output is a contiguous dot
    product); out: (N, n_out). Windows are independent, so threads split them with no shared sums: the
    result does not depend on the thread count.
    """
    N, P = local.shape
    n_layers = sizes.shape[0] - 1
    H0 = sizes[1]
    width = 0
    for l in range(1, n_layers + 1):
        width = max(width, sizes[l])
    chunk = 256
    n_chunks = (N + chunk - 1) // chunk
    b0 = weight_offset(sizes, 0) + sizes[0] * H0
    bias0 = theta[b0 : b0 + H0]
    for c in prange(n_chunks):
        h = np.empty(width, out.dtype)
        g = np.empty(width, out.dtype)
        for t in range(c * chunk, min(N, (c + 1) * chunk)):
            for j in range(H0):
                h[j] = bias0[j]
            if G.shape[0] > 0:
                for j in range(H0):
                    h[j] += G[t, j]
            for p in range(P):
                u = local[t, p]
                for j in range(H0):
                    h[j] += T[u, p, j]
                f = feats[t, p]
                for j in range(C.shape[2]):
                    h[j] += C[p, f, j]
            if n_layers == 1:
                for j in range(H0):
                    out[t, j] = h[j]
            else:
                activate_row(h[:H0], act)
            for l in range(1, n_layers):
                n, m = sizes[l], sizes[l + 1]
                wo = weight_offset(sizes, l)
                last = l == n_layers - 1
                # 2-d views, not flat offsets: numba checks a computed index for wraparound, which keeps
                # these dot products from vectorising
                Wl = WT[wo : wo + n * m].reshape(m, n)
                bl = WT[wo + n * m : wo + n * m + m]
                for k in range(m):
                    s = bl[k]
                    for j in range(n):
                        s += Wl[k, j] * h[j]
                    if last:
                        out[t, k] = s
                    else:
                        g[k] = s
                if not last:
                    for k in range(m):
                        h[k] = activation(g[k], act)
            if log_proba:
                log_softmax_row(out, t, out)
