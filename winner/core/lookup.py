"""Inference by first-layer lookup: the first layer is linear in the embeddings (Collobert et al. 2011), so each
(position, word) pair's contribution is computed once into a table and a window's first layer is a sum of rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from winner.core.fastmath import FAST, FAST_ENTRY, activate_row, activation, cast_like
from winner.core.layers import log_softmax_row, weight_offset
from winner.core.prefetch import LINE_BYTES, prefetch3
from winner.core.updates import number_row

NO_EXTRA = np.zeros((0, 0), np.float32)  # lookup_logits' G when the first layer has nothing beyond the table
LOOKUP_AHEAD = 4  # lookup_logits asks for the table rows of the window this many windows ahead
ROWS_PER_PASS = 5  # table rows lookup_logits adds to a window's first layer in one pass (_add_rows: five terms)


@njit(cache=True, fastmath=FAST, error_model="numpy")
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


@njit(cache=True, fastmath=FAST, error_model="numpy")
def local_ids(ids, start, stop, slot, uniq, U, local):
    """local[b - start, p] = slot[ids[b, p]] for the windows numbered by compact_rows, then reset slot."""
    P = ids.shape[1]
    for b in range(start, stop):
        for p in range(P):
            local[b - start, p] = slot[ids[b, p]]
    for k in range(U):
        slot[uniq[k]] = -1


def first_layer_tables(E, F, W0, uniq, T, C) -> None:
    """Each (position, word) and (position, feature) pair's contribution to the first layer.

    T[u, p] = E[uniq[u]] @ W0[p*w : p*w+d] (len(uniq), P, H); C[p, f] = F[f] @ W0[p*w+d : (p+1)*w] (P, Vf, H),
    w = d + df; uniq None: every row of E. A word's P rows are contiguous: consecutive windows of a text reuse
    them while they are in cache. Every row by `stable_product`, so a word's rows have the same bits whichever
    words share the table (a text tagged alone or in a batch, a file in one pass or in chunks).
    """
    d, df = E.shape[1], F.shape[1]
    w = d + df
    rows = np.ascontiguousarray(E if uniq is None else E[uniq], T.dtype)
    features = np.ascontiguousarray(F, T.dtype)
    for p in range(T.shape[1]):
        stable_product(rows, W0[p * w : p * w + d], T, p)
        if df > 0:
            C[p] = stable_product(features, W0[p * w + d : (p + 1) * w])


def stable_product(A, B, out=None, position=0):
    """A @ B into out[:, position] (out: (m, positions, n), or None for a new (m, n) result), each row's bits a
    function of that row of A and of B alone.

    A BLAS computes a row by code that depends on where the row falls in its blocking (OpenBLAS's Haswell kernels
    give a row other bits when it moves within the same product), so a word's table row would depend on its
    neighbours in the table. Here every 4 x 4 block of the result runs through the same code, with rows and columns
    beyond the matrix padded with zeros.
    """
    m, k = A.shape
    n = B.shape[1]
    dtype = A.dtype if out is None else out.dtype
    BT = np.zeros((n + (-n) % TILE, k), dtype)
    BT[:n] = B.T
    result = np.empty((m, 1, n), dtype) if out is None else out
    stable_rows_times(np.ascontiguousarray(A, dtype), BT, result, position)
    return result[:, 0] if out is None else result


TILE = 4  # stable_rows_times' block of rows and of columns
STABLE_ROW_BLOCK = 64  # rows a thread takes at a time


# An entry kernel (only Python calls it), so it may reassociate: its sums have one compiled copy (see fastmath.FAST).
# Parallel and cached: safe to load in any process once winner.core.runtime.init() has run (see runtime.py).
@njit(cache=True, parallel=True, fastmath=FAST_ENTRY, error_model="numpy")
def stable_rows_times(A, BT, out, position):
    """out[r, position, j] = A[r] . BT[j] for every r and every j < out.shape[2], by 4 x 4 blocks that all go
    through the same loop: each block's rows of A are first copied into a zero-padded scratch, and BT has zero
    rows up to a multiple of 4. Threads take blocks of rows; the bits do not depend on the thread count."""
    m, k = A.shape
    n = out.shape[2]
    n_pad = BT.shape[0]
    n_blocks = (m + STABLE_ROW_BLOCK - 1) // STABLE_ROW_BLOCK
    for blk in prange(n_blocks):
        X = np.zeros((TILE, k), A.dtype)
        acc = np.empty((TILE, TILE), out.dtype)
        for r in range(blk * STABLE_ROW_BLOCK, min(m, (blk + 1) * STABLE_ROW_BLOCK), TILE):
            q = min(TILE, m - r)
            for a in range(TILE):
                for i in range(k):
                    X[a, i] = A[r + a, i] if a < q else 0.0
            for j in range(0, n_pad, TILE):
                _block(X, BT, j, k, acc)
                for a in range(q):
                    for b in range(min(TILE, n - j)):
                        out[r + a, position, j + b] = acc[a, b]


@njit(inline="always", error_model="numpy")
def _block(X, BT, j, k, acc):
    """acc[a, b] = X[a] . BT[j + b], a 4 x 4 block: sixteen running sums that vectorise along k together. Inlined
    into stable_rows_times' own code before it is compiled, so it is compiled once, with that kernel's fastmath
    flags (the reassociation the vectorised sums need), and never as a copy of its own."""
    x0, x1, x2, x3 = X[0], X[1], X[2], X[3]
    y0, y1, y2, y3 = BT[j], BT[j + 1], BT[j + 2], BT[j + 3]
    z = cast_like(0.0, acc)
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = z
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = z
    for i in range(k):
        a0, a1, a2, a3 = x0[i], x1[i], x2[i], x3[i]
        b0, b1, b2, b3 = y0[i], y1[i], y2[i], y3[i]
        s00 += a0 * b0; s01 += a0 * b1; s02 += a0 * b2; s03 += a0 * b3  # noqa: E702
        s10 += a1 * b0; s11 += a1 * b1; s12 += a1 * b2; s13 += a1 * b3  # noqa: E702
        s20 += a2 * b0; s21 += a2 * b1; s22 += a2 * b2; s23 += a2 * b3  # noqa: E702
        s30 += a3 * b0; s31 += a3 * b1; s32 += a3 * b2; s33 += a3 * b3  # noqa: E702
    acc[0, 0], acc[0, 1], acc[0, 2], acc[0, 3] = s00, s01, s02, s03
    acc[1, 0], acc[1, 1], acc[1, 2], acc[1, 3] = s10, s11, s12, s13
    acc[2, 0], acc[2, 1], acc[2, 2], acc[2, 3] = s20, s21, s22, s23
    acc[3, 0], acc[3, 1], acc[3, 2], acc[3, 3] = s30, s31, s32, s33


# Parallel and cached: safe to load in any process once winner.core.runtime.init() has run (see runtime.py).
@njit(cache=True, parallel=True, fastmath=FAST_ENTRY, error_model="numpy")
def lookup_logits(local, feats, T, C, theta, WT, sizes, act, log_proba, out, G):
    """Logits (or log-probabilities) of windows whose first layer is a sum of table rows.

    local: (N, P) int32 indices into T's first axis; feats: (N, P) int32; T: (U, P', H0) with P' >= P (positions
    from P on are the caller's, added in G); C: (P', Vf, H0); G: (N, H0) more of each window's first layer (the
    context codes' share, winner.core.context), or (0, 0) for none;
    WT: theta with every layer above the first stored transposed (so each output is a contiguous dot
    product); out: (N, n_out). Windows are independent, so threads split them with no shared sums: the
    result does not depend on the thread count. The rows of the window LOOKUP_AHEAD ahead are asked for
    (prefetch) while a window is summed: a rare word's rows come from memory. A window's rows are added
    ROWS_PER_PASS at a time in one pass over h, and each layer above the first computes three outputs per pass
    over its input: each pass stores h and loads the weights once for several rows, where loads and stores,
    not the adds, bound these loops.
    """
    N, P = local.shape
    n_layers = sizes.shape[0] - 1
    H0 = sizes[1]
    width = 0
    for l in range(1, n_layers + 1):
        width = max(width, sizes[l])
    chunk = 256
    step = max(1, LINE_BYTES // T.itemsize)
    n_chunks = (N + chunk - 1) // chunk
    b0 = weight_offset(sizes, 0) + sizes[0] * H0
    bias0 = theta[b0 : b0 + H0]
    for c in prange(n_chunks):
        h = np.empty(width, out.dtype)
        g = np.empty(width, out.dtype)
        rows = np.empty((ROWS_PER_PASS, 2), np.int64)
        end = min(N, (c + 1) * chunk)
        for t in range(c * chunk, end):
            if t + LOOKUP_AHEAD < end:
                for p in range(P):
                    u = local[t + LOOKUP_AHEAD, p]
                    for j in range(0, H0, step):
                        prefetch3(T, u, p, j)
                    prefetch3(T, u, p, H0 - 1)  # a row need not start on a cache line
            for j in range(H0):
                h[j] = bias0[j]
            if G.shape[0] > 0:
                for j in range(H0):
                    h[j] += G[t, j]
            for p0 in range(0, P, ROWS_PER_PASS):
                k = min(ROWS_PER_PASS, P - p0)
                for i in range(k):
                    rows[i, 0], rows[i, 1] = local[t, p0 + i], p0 + i
                _add_rows(h, T, rows, k)
                if C.shape[2] > 0:
                    for i in range(k):
                        rows[i, 0], rows[i, 1] = p0 + i, feats[t, p0 + i]
                    _add_rows(h, C, rows, k)
            if n_layers == 1:
                for j in range(H0):
                    out[t, j] = h[j]
            else:
                activate_row(h[:H0], act)
            for l in range(1, n_layers):
                n, m = sizes[l], sizes[l + 1]
                wo = weight_offset(sizes, l)
                # 2-d views, not flat offsets: numba checks a computed index for wraparound, which keeps
                # these dot products from vectorising
                Wl = WT[wo : wo + n * m].reshape(m, n)
                bl = WT[wo + n * m : wo + n * m + m]
                _dense_row(Wl, bl, h, g)
                if l == n_layers - 1:
                    for k in range(m):
                        out[t, k] = g[k]
                else:
                    for k in range(m):
                        h[k] = activation(g[k], act)
            if log_proba:
                log_softmax_row(out, t, out)


@njit(inline="always", error_model="numpy")
def _add_rows(h, X, rows, k):
    """h += X[rows[0, 0], rows[0, 1]] + ... + X[rows[4, 0], rows[4, 1]] in one pass over h when k == 5 rows of a
    3-d table are given (in that order, then added to h), else the k rows one pass each. Inlined into
    lookup_logits, under its fastmath flags."""
    if k < ROWS_PER_PASS:
        for i in range(k):
            a, b = rows[i, 0], rows[i, 1]
            for j in range(h.shape[0]):
                h[j] += X[a, b, j]
        return
    a0, b0, a1, b1 = rows[0, 0], rows[0, 1], rows[1, 0], rows[1, 1]
    a2, b2, a3, b3, a4, b4 = rows[2, 0], rows[2, 1], rows[3, 0], rows[3, 1], rows[4, 0], rows[4, 1]
    for j in range(h.shape[0]):
        h[j] += X[a0, b0, j] + X[a1, b1, j] + X[a2, b2, j] + X[a3, b3, j] + X[a4, b4, j]


@njit(inline="always", error_model="numpy")
def _dense_row(W, b, x, dst):
    """dst[k] = b[k] + W[k] . x[:W.shape[1]] for every row k of W, three rows per pass over x (x is loaded once for
    the three). Inlined into lookup_logits, under its fastmath flags."""
    m, n = W.shape
    k = 0
    while k + 3 <= m:
        Wa, Wb, Wc = W[k], W[k + 1], W[k + 2]
        sa, sb, sc = b[k], b[k + 1], b[k + 2]
        for j in range(n):
            sa += Wa[j] * x[j]
            sb += Wb[j] * x[j]
            sc += Wc[j] * x[j]
        dst[k], dst[k + 1], dst[k + 2] = sa, sb, sc
        k += 3
    for r in range(k, m):
        s = b[r]
        for j in range(n):
            s += W[r, j] * x[j]
        dst[r] = s
