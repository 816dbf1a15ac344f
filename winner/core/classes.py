"""A class-factored softmax output (Goodman 2001; Mikolov et al. 2011): P(w | h) = P(c(w) | h) P(w | c(w), h).

The window MLP's top layer has n_out = C + V columns: the C class scores first, then the V word scores
grouped class by class, so that a class's words are one contiguous column range (`ClassLayout.starts`).
Both factors are softmaxes, over the C class columns and over the columns of one class: the model stays
exactly normalised over the vocabulary, and a training step needs only the class columns and the target's
class block, about 2 sqrt(V) columns instead of V (the top layer's W, b and direct connections D alike).

`class_xent` is the straightforward loss over the full logits (the reference: its gradient goes through the
core's ordinary backward); `class_step` is the training step that never forms the other columns, with lazy
Adam on the columns it touched (at Adam's first step, and always with SGD, equal to the reference update).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from winner.core.blas import gemm
from winner.core.fastmath import FAST, cast_like
from winner.core.layers import acts_offset, forward_input, hidden_layer, weight_offset
from winner.core.prefetch import LINE_BYTES, prefetch, prefetch_block
from winner.core.steps import layer_step, stage_batch, unit_grads
from winner.core.updates import OPT_SGD, adam_constants, adam_moments, update_tables

# Rows of a class block per kernel call in its backward and update (each call costs reference counts); the next
# chunk's rows are asked for (prefetch) while one chunk is updated.
CHUNK_ROWS = 16


class ClassLayout(NamedTuple):
    """Which class each word is in and where its score sits in the output."""

    word_class: np.ndarray  # (V,) int32
    word_col: np.ndarray  # (V,) int64: the output column of each word's score (>= C)
    starts: np.ndarray  # (C + 1,) int64: class c's words are the columns starts[c]:starts[c + 1]


class ClassScratch(NamedTuple):
    """class_step's buffers for batches of up to `cap` windows; the top layer is one matrix T (r, C + V) of r =
    n + 1 (+ n_in) rows [W; b; D] read by the rows U = [A, 1, X] (top_matrix)."""

    U: np.ndarray  # (cap, r) the top layer's input rows
    dU: np.ndarray  # (cap, r) dL/dU
    Zc: np.ndarray  # (cap, C) class scores, then dL/dscores
    Zw: np.ndarray  # (cap, max class size) the target class's word scores, then dL/dscores
    nll: np.ndarray  # (cap,) float64 -log P(target) of each window
    GC: np.ndarray  # (r, C) the class columns' gradient
    GB: np.ndarray  # (CHUNK_ROWS * max class size,) the gradient of CHUNK_ROWS rows of a class block
    count: np.ndarray  # (C,) int32: windows of each class in this batch; 0 between steps
    order: np.ndarray  # (C,) int32: the classes of this batch, in order of first use
    first: np.ndarray  # (C,) int32: where a class's windows start in `members`
    members: np.ndarray  # (cap,) int32: the batch's windows grouped by class, in batch order within a class


def frequency_classes(counts: np.ndarray, n_classes: int) -> np.ndarray:
    """Class of every word (int32): words by descending count cut into bins of equal unigram mass (Mikolov et
    al. 2011), so that frequent words sit in small classes; empty bins dropped, so at most n_classes classes.
    Ties in count keep the word order (a stable sort): the same counts give the same classes."""
    counts = np.asarray(counts, dtype=np.float64)
    order = np.argsort(-counts, kind="stable")
    mass = np.cumsum(counts[order]) / counts.sum()
    before = np.concatenate([[0.0], mass[:-1]])
    bins = np.minimum((before * n_classes).astype(np.int64), n_classes - 1)
    _, dense = np.unique(bins, return_inverse=True)
    word_class = np.empty(len(counts), np.int32)
    word_class[order] = dense
    return word_class


def layout_of(word_class: np.ndarray) -> ClassLayout:
    """The output layout of a class assignment: C class columns, then each class's words in word order."""
    word_class = np.ascontiguousarray(word_class, dtype=np.int32)
    C = int(word_class.max()) + 1
    sizes = np.bincount(word_class, minlength=C)
    if (sizes == 0).any():
        raise ValueError(f"classes must be numbered 0..C-1 without gaps; class {int(np.argmin(sizes))} is empty")
    starts = C + np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    members = np.argsort(word_class, kind="stable")
    word_col = np.empty(len(word_class), np.int64)
    word_col[members] = C + np.arange(len(word_class))
    return ClassLayout(word_class, word_col, starts)


def top_rows(sizes: np.ndarray, has_direct: bool) -> int:
    """Rows of the top matrix T = [W; b; D]: the last hidden size + 1 (+ the input width with direct connections)."""
    return int(sizes[-2]) + 1 + (int(sizes[0]) if has_direct else 0)


def class_scratch(layout: ClassLayout, cap: int, rows: int, dtype: np.dtype) -> ClassScratch:
    C = layout.starts.shape[0] - 1
    widest = int(np.diff(layout.starts).max())
    return ClassScratch(np.zeros((cap, rows), dtype), np.zeros((cap, rows), dtype), np.zeros((cap, C), dtype),
                        np.zeros((cap, widest), dtype), np.zeros(cap, np.float64), np.zeros((rows, C), dtype),
                        np.zeros(CHUNK_ROWS * widest, dtype), np.zeros(C, np.int32), np.zeros(C, np.int32),
                        np.zeros(C, np.int32), np.zeros(cap, np.int32))


# ---------------------------------------------------------------- from full logits: the reference


@njit(cache=True, fastmath=FAST, error_model="numpy")
def range_lse(z, s, e):
    """log sum exp of z[s:e] in float64, and its max."""
    mx = z[s]
    for j in range(s, e):
        mx = max(mx, z[j])
    total = 0.0
    for j in range(s, e):
        total += np.exp(np.float64(z[j]) - mx)
    return mx + np.log(total), mx


@njit(cache=True, fastmath=FAST, error_model="numpy")
def softmax_range(z, s, e, t, scale, dz):
    """-log softmax(z[s:e])[t - s] (float64); dz[s:e] = scale * (softmax - onehot(t)). dz may be z."""
    lse, _ = range_lse(z, s, e)
    nll = lse - np.float64(z[t])
    for j in range(s, e):
        dz[j] = scale * np.exp(np.float64(z[j]) - lse)
    dz[t] -= scale
    return nll


@njit(cache=True, fastmath=FAST, error_model="numpy")
def class_xent(Z, targets, layout, scale, dZ):
    """Summed factored cross-entropy of the full logits Z (B, C + V); dZ = scale * its gradient (0 outside the
    class columns and the target's class). The reference for class_step and for perplexity."""
    C = layout.starts.shape[0] - 1
    loss = 0.0
    for b in range(Z.shape[0]):
        w = targets[b]
        c = layout.word_class[w]
        dZ[b, :] = 0.0
        loss += softmax_range(Z[b], 0, C, c, scale, dZ[b])
        loss += softmax_range(Z[b], layout.starts[c], layout.starts[c + 1], layout.word_col[w], scale, dZ[b])
    return loss


@njit(cache=True, fastmath=FAST, error_model="numpy")
def class_nll(Z, targets, layout, out):
    """out[b] = -log P(targets[b] | window b) (float64) from the full logits Z (B, C + V)."""
    C = layout.starts.shape[0] - 1
    row = np.empty(Z.shape[1], np.float64)
    for b in range(Z.shape[0]):
        w = targets[b]
        c = layout.word_class[w]
        out[b] = softmax_range(Z[b], 0, C, c, 0.0, row)
        out[b] += softmax_range(Z[b], layout.starts[c], layout.starts[c + 1], layout.word_col[w], 0.0, row)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def log_range(z, s, e, out):
    """out[s:e] = log softmax(z[s:e]) in float64."""
    lse, _ = range_lse(z, s, e)
    for j in range(s, e):
        out[j] = np.float64(z[j]) - lse


@njit(cache=True, fastmath=FAST, error_model="numpy")
def word_log_proba(Z, layout, out):
    """out (B, V) float64 = log P(w | h) for every word, in word order, from the full logits Z (B, C + V)."""
    C = layout.starts.shape[0] - 1
    row = np.empty(Z.shape[1], np.float64)
    for b in range(Z.shape[0]):
        log_range(Z[b], 0, C, row)
        for c in range(C):
            log_range(Z[b], layout.starts[c], layout.starts[c + 1], row)
        for w in range(out.shape[1]):
            out[b, w] = row[layout.word_class[w]] + row[layout.word_col[w]]


# ---------------------------------------------------------------- the training step


@njit(cache=True, fastmath=FAST, error_model="numpy")
def top_matrix(theta, sizes, has_direct):
    """The top layer's [W; b; D] as one (r, C + V) matrix (top_rows): they are contiguous in theta."""
    L = sizes.shape[0] - 2
    m = sizes[L + 1]
    r = sizes[L] + 1 + (sizes[0] if has_direct else 0)
    wo = weight_offset(sizes, L)
    return theta[wo : wo + r * m].reshape(r, m)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def stage_top_inputs(acts, sizes, has_direct, B, U):
    """U[:B] = [A, 1, X]: the last layer's input, a 1 for the bias, the gathered embeddings (direct only)."""
    L = sizes.shape[0] - 2
    n, n_in = sizes[L], sizes[0]
    ao = acts_offset(sizes, L, B)
    for b in range(B):
        U[b, :n] = acts[ao + b * n : ao + (b + 1) * n]
        U[b, n] = 1.0
        if has_direct:
            U[b, n + 1 :] = acts[b * n_in : (b + 1) * n_in]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def prefetch_rows(T, M, V, i0, i1, lo, hi):
    """Ask for rows i0:i1's columns lo:hi of T and of Adam's moments M, V."""
    prefetch_block(T, i0, i1, lo, hi)
    prefetch_block(M, i0, i1, lo, hi)
    prefetch_block(V, i0, i1, lo, hi)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def class_scores(U, T, s, e, members, Zw):
    """Zw[b, :e-s] = U[b] @ T[:, s:e] for the windows b in `members` (one class's): T's rows in order, each read
    once for all of them; every score adds its terms in row order, as one window at a time would. Indices are
    unsigned so that numba drops its negative-index checks and the column sweeps vectorise (see
    blas._rows_times_block)."""
    lo, hi = np.uint64(s), np.uint64(e)
    for q in range(members.shape[0]):
        b = np.uint64(members[q])
        for j in range(lo, hi):
            Zw[b, j - lo] = 0.0
    r = T.shape[0]
    prefetch_block(T, 0, min(r, CHUNK_ROWS), s, e)
    step = np.uint64(LINE_BYTES // T.itemsize)
    for i in range(np.uint64(r)):
        ahead = min(i + np.uint64(CHUNK_ROWS), np.uint64(r - 1))
        for j in range(lo, hi, step):
            prefetch(T, ahead, j)
        for q in range(members.shape[0]):
            b = np.uint64(members[q])
            ui = U[b, i]
            for j in range(lo, hi):
                Zw[b, j - lo] += ui * T[i, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def chunk_dots(T, Zw, dU, members, i0, i1, s, e):
    """dU[b, i] += T[i, s:e] . Zw[b, :e-s] for rows i0:i1 and the windows b in members: each dot in column order
    from 0, as a plain loop sums it, but four rows in one sweep so that their sums overlap."""
    lo, hi = np.uint64(s), np.uint64(e)
    for q in range(members.shape[0]):
        b = np.uint64(members[q])
        for i in range(i0, i1, 4):
            last = min(i + 3, i1 - 1)
            r0, r1, r2, r3 = np.uint64(i), np.uint64(min(i + 1, last)), np.uint64(min(i + 2, last)), np.uint64(last)
            a0 = a1 = a2 = a3 = cast_like(0.0, dU)
            for j in range(lo, hi):
                d = Zw[b, j - lo]
                a0 += T[r0, j] * d
                a1 += T[r1, j] * d
                a2 += T[r2, j] * d
                a3 += T[r3, j] * d
            dU[b, r0] += a0
            if i + 1 <= last:
                dU[b, r1] += a1
            if i + 2 <= last:
                dU[b, r2] += a2
            if i + 3 <= last:
                dU[b, r3] += a3


@njit(cache=True, fastmath=FAST, error_model="numpy")
def chunk_grads(U, Zw, members, G, i0, i1, width):
    """G[i - i0, :width] = the sum over the windows b in members, in their order from 0, of U[b, i] * Zw[b, :width].
    With several windows, eight columns at a time in eight running sums held in registers over the windows (a sum
    kept in G would go through memory at every window); with one, a column sweep (it vectorises)."""
    if members.shape[0] == 1:
        b = np.uint64(members[0])
        for i in range(i0, i1):
            gi, ui = np.uint64(i - i0), U[b, np.uint64(i)]
            for j in range(np.uint64(width)):
                G[gi, j] = 0.0
                G[gi, j] += ui * Zw[b, j]
        return
    n8 = np.uint64(width - width % 8)
    for i in range(i0, i1):
        gi, ii = np.uint64(i - i0), np.uint64(i)
        for j in range(np.uint64(0), n8, np.uint64(8)):
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = cast_like(0.0, G)
            for q in range(members.shape[0]):
                b = np.uint64(members[q])
                ui = U[b, ii]
                a0, a1, a2, a3 = a0 + ui * Zw[b, j], a1 + ui * Zw[b, j + 1], a2 + ui * Zw[b, j + 2], \
                    a3 + ui * Zw[b, j + 3]
                a4, a5, a6, a7 = a4 + ui * Zw[b, j + 4], a5 + ui * Zw[b, j + 5], a6 + ui * Zw[b, j + 6], \
                    a7 + ui * Zw[b, j + 7]
            G[gi, j], G[gi, j + 1], G[gi, j + 2], G[gi, j + 3] = a0, a1, a2, a3
            G[gi, j + 4], G[gi, j + 5], G[gi, j + 6], G[gi, j + 7] = a4, a5, a6, a7
        for j in range(n8, np.uint64(width)):
            a = cast_like(0.0, G)
            for q in range(members.shape[0]):
                b = np.uint64(members[q])
                a += U[b, ii] * Zw[b, j]
            G[gi, j] = a


@njit(cache=True, fastmath=FAST, error_model="numpy")
def group_by_class(targets, layout, cs, B):
    """cs.order[:k] = the batch's classes in order of first use, cs.count their windows, whose numbers (in batch
    order) are cs.members[cs.first[c] : cs.first[c] + cs.count[c]]; returns k."""
    k = 0
    for b in range(B):
        c = layout.word_class[targets[b]]
        if cs.count[c] == 0:
            cs.order[k] = c
            k += 1
        cs.count[c] += 1
    pos = 0
    for i in range(k):
        c = cs.order[i]
        cs.first[c] = pos
        pos += cs.count[c]
        cs.count[c] = 0
    for b in range(B):
        c = layout.word_class[targets[b]]
        cs.members[cs.first[c] + cs.count[c]] = b
        cs.count[c] += 1
    return k


@njit(cache=True, fastmath=FAST, error_model="numpy")
def class_members(cs, c):
    """The windows of class c in this batch (group_by_class), in batch order."""
    return cs.members[cs.first[c] : cs.first[c] + cs.count[c]]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def clear_counts(cs, n_classes):
    """cs.count back to 0 for the batch's n_classes classes (group_by_class's count), as between steps."""
    for i in range(n_classes):
        cs.count[cs.order[i]] = 0


@njit(cache=True, fastmath=FAST, error_model="numpy")
def top_forward(targets, T, layout, cs, B, n_classes, scale):
    """Class scores and each window's class-block scores from cs.U, a class's windows together (group_by_class
    has run); cs.nll[b] = -log P(targets[b]); Zc and Zw then hold scale * dL/dscores (scale 0: zeros)."""
    C = cs.Zc.shape[1]
    Zc = cs.Zc[:B]
    gemm(False, False, 1.0, cs.U[:B], T[:, :C], 0.0, Zc)
    for i in range(n_classes):
        c = cs.order[i]
        class_scores(cs.U, T, layout.starts[c], layout.starts[c + 1], class_members(cs, c), cs.Zw)
    for b in range(B):
        w = targets[b]
        c = layout.word_class[w]
        s, e = layout.starts[c], layout.starts[c + 1]
        z = cs.Zw[b]
        cs.nll[b] = softmax_range(Zc[b], 0, C, c, scale, Zc[b]) + softmax_range(z, 0, e - s, layout.word_col[w] - s,
                                                                                  scale, z)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def update_rows(T, G, M, V, i0, i1, s, e, bias_row, hyper, k, ahead):
    """Rows i0:i1, columns s:e of T from their gradient G[i - i0, :e-s] plus weight decay (every row but the
    bias's): SGD, or lazy Adam with moments M, V and k = adam_constants at this step, one sweep per row. While
    row i is updated, row i + ahead of T, M and V is asked for (prefetch; ahead 0: none)."""
    lo, hi = np.uint64(s), np.uint64(e)
    lr, l2, zero = cast_like(hyper.lr, T), cast_like(hyper.l2, T), cast_like(0.0, T)
    step, last = np.uint64(LINE_BYTES // T.itemsize), np.uint64(T.shape[0] - 1)
    for i in range(np.uint64(i0), np.uint64(i1)):
        if ahead > 0 and i + np.uint64(ahead) <= last:
            for j in range(lo, hi, step):
                prefetch(T, i + np.uint64(ahead), j)
                prefetch(M, i + np.uint64(ahead), j)
                prefetch(V, i + np.uint64(ahead), j)
        decay = l2 if i != np.uint64(bias_row) else zero
        gi = i - np.uint64(i0)
        if hyper.opt == OPT_SGD:
            for j in range(lo, hi):
                T[i, j] -= lr * (G[gi, j - lo] + decay * T[i, j])
        else:
            for j in range(lo, hi):
                M[i, j], V[i, j], change = adam_moments(G[gi, j - lo] + decay * T[i, j], M[i, j], V[i, j], k)
                T[i, j] -= change


@njit(cache=True, fastmath=FAST, error_model="numpy")
def block_rows_step(T, M, V, cs, members, s, e, bias_row, hyper, k):
    """Backward and update of the block T[:, s:e] for the windows `members`, CHUNK_ROWS rows at a time: with the old
    rows, each window's dU[b] += rows . dZw[b] (chunk_dots), then the rows' gradient (the windows' outer products
    added in window order, chunk_grads) and their update (update_rows). Every sum adds its terms in the order of a
    backward pass over the whole block followed by one update, so the results are the same, but each row is read
    while in cache; the rows ahead are asked for (prefetch)."""
    r = T.shape[0]
    G = cs.GB[: CHUNK_ROWS * (e - s)].reshape(CHUNK_ROWS, e - s)
    prefetch_rows(T, M, V, 0, min(r, CHUNK_ROWS), s, e)
    for i0 in range(0, r, CHUNK_ROWS):
        i1 = min(r, i0 + CHUNK_ROWS)
        chunk_dots(T, cs.Zw, cs.dU, members, i0, i1, s, e)
        chunk_grads(cs.U, cs.Zw, members, G, i0, i1, e - s)
        update_rows(T, G, M, V, i0, i1, s, e, bias_row, hyper, k, CHUNK_ROWS)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def class_top(targets, params, net, layout, scratch, cs, B, hyper, t, adam):
    """Forward, backward and update of the factored top layer for a batch whose lower layers have run: the
    class columns, then class by class each used block (its windows grouped). dL/dA goes to scratch.dacts,
    dL/dX through D stays in cs.dU. Returns the mean loss; a non-finite one returns before any update."""
    sizes, L = params.sizes, params.sizes.shape[0] - 2
    n, C = sizes[L], cs.Zc.shape[1]
    T = top_matrix(params.theta, sizes, net.has_direct)
    U, dU, Zc = cs.U[:B], cs.dU[:B], cs.Zc[:B]
    stage_top_inputs(scratch.acts, sizes, net.has_direct, B, U)
    n_classes = group_by_class(targets, layout, cs, B)
    top_forward(targets, T, layout, cs, B, n_classes, 1.0 / B)
    loss = 0.0
    for b in range(B):
        loss += cs.nll[b]
    loss /= B
    if not np.isfinite(loss):
        clear_counts(cs, n_classes)
        return loss
    gemm(False, True, 1.0, Zc, T[:, :C], 0.0, dU)
    gemm(True, False, 1.0, U, Zc, 0.0, cs.GC)
    sgd = hyper.opt == OPT_SGD
    M = T if sgd else top_matrix(adam.m, sizes, net.has_direct)
    V = T if sgd else top_matrix(adam.v, sizes, net.has_direct)
    k = adam_constants(hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, t, T)
    for i in range(n_classes):
        c = cs.order[i]
        block_rows_step(T, M, V, cs, class_members(cs, c), layout.starts[c], layout.starts[c + 1], n, hyper, k)
    clear_counts(cs, n_classes)
    update_rows(T, cs.GC, M, V, 0, T.shape[0], 0, C, n, hyper, k, 0)
    ao = acts_offset(sizes, L, B)
    scratch.dacts[ao : ao + B * n].reshape(B, n)[:] = dU[:, :n]
    return loss


@njit(cache=True, fastmath=FAST, error_model="numpy")
def class_step(ids, feats, targets, params, net, seed, step, hyper, adam, scratch, cs, layout):
    """One optimiser step on one minibatch of a class-factored model; returns the mean loss.

    The hidden layers run as in the core's fused step; the top layer computes only the class columns and
    each target's class block, and updates only those (lazy Adam, lazy weight decay). A non-finite loss
    returns before any update."""
    B = ids.shape[0]
    sizes = params.sizes
    L = sizes.shape[0] - 2
    forward_input(ids, feats, params, net, seed, step, scratch, False)
    for l in range(L):
        hidden_layer(params, net, seed, step, scratch, B, l, False)
    t = step + 1
    loss = class_top(targets, params, net, layout, scratch, cs, B, hyper, t, adam)
    if not np.isfinite(loss):
        return loss
    n_in, n = sizes[0], sizes[L]
    need = L > 0 or hyper.update_E or hyper.update_F
    unit_grads(sizes, net, scratch, B, L, need)
    for l in range(L - 1, -1, -1):
        need = l > 0 or hyper.update_E or hyper.update_F
        ao, ao1 = acts_offset(sizes, l, B), acts_offset(sizes, l + 1, B)
        dA = scratch.dacts[ao : ao + B * sizes[l]].reshape(B, sizes[l])
        dcur = scratch.dacts[ao1 : ao1 + B * sizes[l + 1]].reshape(B, sizes[l + 1])
        layer_step(params, hyper, t, adam, scratch, dcur, dA, l, need, True)
        if l == 0 and net.has_direct and need:
            dA += cs.dU[:B, n + 1 :]
        unit_grads(sizes, net, scratch, B, l, need)
    update_tables(ids, feats, scratch.dacts[0 : B * n_in].reshape(B, n_in), params, hyper, t, adam, scratch)
    return loss


@njit(cache=True, fastmath=FAST, error_model="numpy")
def batch_nll(ids, feats, targets, params, net, scratch, cs, layout, out):
    """out[b] = -log P(targets[b] | window b) (float64) for one batch with dropout off, from the class columns
    and the target's class block only: as exact as class_nll over the full logits, without the other blocks."""
    B = ids.shape[0]
    sizes = params.sizes
    forward_input(ids, feats, params, net, 0, 0, scratch, False)
    for l in range(sizes.shape[0] - 2):
        hidden_layer(params, net, 0, 0, scratch, B, l, False)
    stage_top_inputs(scratch.acts, sizes, net.has_direct, B, cs.U[:B])
    n_classes = group_by_class(targets, layout, cs, B)
    top_forward(targets, top_matrix(params.theta, sizes, net.has_direct), layout, cs, B, n_classes, 0.0)
    clear_counts(cs, n_classes)
    out[:] = cs.nll[:B]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def train_batches(ids, feats, targets, order, batch, params, net, seed, step0, hyper, adam, scratch, cs, layout):
    """steps.train_batches for a class-factored model: windows order[0], order[1], ... in minibatches;
    returns the summed batch losses (stopping early, and returning it, at a non-finite one)."""
    total = 0.0
    N = order.shape[0]
    for s in range(0, N, batch):
        e = min(s + batch, N)
        B = e - s
        stage_batch(ids, feats, targets, order, s, e, scratch)
        loss = class_step(scratch.ids[:B], scratch.feats[:B], scratch.targets[:B], params, net, seed,
                          step0 + s // batch, hyper, adam, scratch, cs, layout)
        if not np.isfinite(loss):
            return loss
        total += loss * B
    return total
