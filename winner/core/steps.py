"""Training steps as kernels: the plain reference step first, then the fused fast paths, then `train_batches`.

The reference step (`loss_and_grad` + `apply_update`) forms every gradient and is what the gradient checks
verify; each fast path equals it up to float rounding, with the same dropout masks, and `step_kind` is the
one place that decides which runs. A non-finite loss returns before any parameter changes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from winner.core.blas import gemm, gemm_one_call, part_bounds, rows_times_vector
from winner.core.fastmath import (
    FAST,
    FAST_ENTRY,
    activate_row,
    activation,
    backprop_kept_units,
    backprop_units,
    cast_like,
    fill_dropout,
    hash_uniform,
)
from winner.core.layers import (
    LOSS_NONE,
    acts_offset,
    backward,
    forward,
    forward_core,
    forward_layers,
    gather,
    loss_grad,
    top_block,
    top_inputs,
    top_scratch,
    weight_offset,
)
from winner.core.updates import (
    OPT_SGD,
    adam_dense,
    add_penalty_grad,
    apply_update,
    clear_slots,
    dense_block_update,
    number_row,
    rank1_update_dot,
    scatter_rows,
    sgd_tables,
    update_tables,
)

STEP_REFERENCE, STEP_FUSED, STEP_EXAMPLE, STEP_PAIRS = 0, 1, 2, 3
PAIRS_MIN_BATCH = 64  # below this, few (position, word) pairs repeat in a batch: sgd_step_pairs would not pay


class PairScratch(NamedTuple):
    """Scratch of sgd_step_pairs for batches of up to `cap` windows of P positions (tiny when it cannot run)."""

    pmap: np.ndarray  # (cap, P) int32: the pair of each window's word at each position
    words: np.ndarray  # (cap * P,) int32: each pair's word
    offsets: np.ndarray  # (P + 1,) int64: the pairs of position p are offsets[p]:offsets[p+1]
    Xp: np.ndarray  # (cap * P, d): each pair's embedding
    Tp: np.ndarray  # (cap * P, H0): its first-layer product
    Sp: np.ndarray  # (cap * P + 1, H0): dH summed per pair; the last row, the bias gradient
    Gp: np.ndarray  # (cap * P, d): each pair's embedding gradient


# ---------------------------------------------------------------- the reference step


@njit(cache=True, fastmath=FAST, error_model="numpy")
def loss_and_grad(ids, feats, targets, params, net, seed, step, l2, l1, scratch):
    """Mean loss of one batch (plus the weight penalty) and its gradients.

    scratch.grad is overwritten with dL/dtheta; the touched rows of E and F and their gradients are left in
    (rowsE, GE) and (rowsF, GF) of scratch, whose counts are returned: (loss, nE, nF). The caller clears
    the slots.
    """
    B = ids.shape[0]
    forward(ids, feats, params, net, seed, step, scratch)
    loss = loss_grad(scratch.Z[:B], targets, 1.0 / B, scratch.dZ[:B], net.loss_kind, scratch.lanes)
    grad = scratch.grad
    grad[:] = 0.0
    backward(params, net, scratch, scratch.dZ[:B])
    loss += add_penalty_grad(params.theta, params.weight_mask, l2, l1, grad)
    d = params.E.shape[1]
    df = params.F.shape[1]
    dX = scratch.dacts[0 : B * params.sizes[0]].reshape(B, params.sizes[0])
    nE = scatter_rows(ids, dX, 0, d, d + df, scratch.slotE, scratch.rowsE, scratch.GE, 0)
    nF = scatter_rows(feats, dX, d, df, d + df, scratch.slotF, scratch.rowsF, scratch.GF, 0)
    return loss, nE, nF


# ---------------------------------------------------------------- fused steps: backward and update interleaved


@njit(cache=True, fastmath=FAST, error_model="numpy")
def hidden_grad(dA, A, keep, act, drop):
    """dA *= act'(pre-activation), from the activation's output A; with dropout, A and dA carry the keep scale.

    dA, A, keep: flat (n,) views of one layer's buffers; keep is read only when drop > 0.
    """
    if drop > 0.0:
        backprop_units(dA, A, keep, act)
    else:
        backprop_kept_units(dA, A, act)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def unit_grads(sizes, net, scratch, B, l, need):
    """dL/d(layer l's input) in scratch.dacts, from what is there: times act' (l > 0), or times the input
    dropout scale (l = 0, when `need`: the tables take the gradient)."""
    n = sizes[l]
    ao = acts_offset(sizes, l, B)
    e = ao + B * n
    if l > 0:
        hidden_grad(scratch.dacts[ao:e], scratch.acts[ao:e], scratch.keep[ao:e], net.act, net.drop_hidden)
    elif net.drop_in > 0.0 and need:
        dflat = scratch.dacts[0:e]
        for i in range(e):
            dflat[i] *= scratch.keep[i]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def example_forward(ids, feats, params, net, seed, step, scratch):
    """sgd_example's forward pass: each layer's one row by rows_times_vector (no BLAS call), logits in Z[0]."""
    theta, sizes, acts, keep = params.theta, params.sizes, scratch.acts, scratch.keep
    n_layers = sizes.shape[0] - 1
    n_in = sizes[0]
    x = acts[0:n_in]
    gather(ids, feats, params.E, params.F, x.reshape(1, n_in))
    if net.drop_in > 0.0:
        fill_dropout(keep[0:n_in], net.drop_in, seed, step, 0)
        for i in range(n_in):
            x[i] *= keep[i]
    ao = 0
    for l in range(n_layers):
        n, m = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        a = acts[ao : ao + n]
        last = l == n_layers - 1
        out = scratch.Z[0] if last else acts[ao + n : ao + n + m]
        out[:] = theta[wo + n * m : wo + n * m + m]
        rows_times_vector(theta[wo : wo + n * m].reshape(n, m), a, out)
        if not last:
            for j in range(m):
                out[j] = activation(out[j], net.act)
            if net.drop_hidden > 0.0:
                K = keep[ao + n : ao + n + m]
                fill_dropout(K, net.drop_hidden, seed, step, ao + n)
                for j in range(m):
                    out[j] *= K[j]
        ao += n
    if net.has_direct:
        n_out = sizes[-1]
        do = weight_offset(sizes, n_layers)
        rows_times_vector(theta[do : do + n_in * n_out].reshape(n_in, n_out), x, scratch.Z[0])


@njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def sgd_example(ids, feats, targets, params, net, seed, step, hyper, scratch):
    """One plain-SGD step on ONE window, without ever forming a gradient; returns its loss.

    Each weight row is read once in the backward pass: the same sweep takes its dot product with the
    layer's delta (for the layer below) and applies the rank-1 update W[i] -= lr * a[i] * delta.
    ids, feats: (1, P); targets: (1,).
    """
    example_forward(ids, feats, params, net, seed, step, scratch)
    loss = loss_grad(scratch.Z[0:1], targets, 1.0, scratch.dZ[0:1], net.loss_kind, scratch.lanes)
    if not np.isfinite(loss):
        return loss
    theta, sizes, acts, dacts = params.theta, params.sizes, scratch.acts, scratch.dacts
    n_layers = sizes.shape[0] - 1
    n_in, n_out = sizes[0], sizes[-1]
    do = weight_offset(sizes, n_layers)
    lr_t = cast_like(hyper.lr, theta)
    for l in range(n_layers - 1, -1, -1):
        n, m = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        bias = theta[wo + n * m : wo + n * m + m]
        ao = acts_offset(sizes, l, 1)
        a = acts[ao : ao + n]
        da = dacts[ao : ao + n]
        delta = scratch.dZ[0] if l == n_layers - 1 else dacts[ao + n : ao + n + m]
        need = l > 0 or hyper.update_E or hyper.update_F
        for i in range(n):
            da[i] = 0.0
        if l == 0 and net.has_direct:
            rank1_update_dot(theta[do : do + n_in * n_out].reshape(n_in, n_out), a, scratch.dZ[0], lr_t, da, need)
        rank1_update_dot(theta[wo : wo + n * m].reshape(n, m), a, delta, lr_t, da, need)
        for j in range(m):
            bias[j] -= lr_t * delta[j]
        unit_grads(sizes, net, scratch, 1, l, True)
    sgd_tables(ids, feats, dacts[0:n_in].reshape(1, n_in), params, hyper)
    return loss


@njit(cache=True, fastmath=FAST, error_model="numpy")
def layer_step(params, hyper, t, adam, scratch, dcur, dA, l, need, row_sums):
    """Layer l's part of a fused backward pass (no direct connections): dA = dcur @ W.T with the old W (when
    `need`), then W and b updated from A (B, n) and dcur (B, m) by dense_block_update, which sums the bias
    gradient row by row into scratch.grad's bias slot when row_sums, else column by column."""
    theta, sizes = params.theta, params.sizes
    B, n = dA.shape
    m = sizes[l + 1]
    wo = weight_offset(sizes, l)
    ao = acts_offset(sizes, l, B)
    if need:
        gemm(False, True, 1.0, dcur, theta[wo : wo + n * m].reshape(n, m), 0.0, dA)
    e = wo + n * m + m
    g = scratch.grad[wo:e] if row_sums else theta[0:1]
    dense_block_update(scratch.acts[ao : ao + B * n].reshape(B, n), dcur, theta[wo:e], n, m, g, adam.m[wo:e],
                       adam.v[wo:e], hyper, t)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def top_step(params, hyper, t, adam, scratch, dcur, dA, need):
    """The top layer's part of a fused backward pass with direct connections, over the combined block
    [W_last; b_last; D] (top_block): dU = dcur @ block.T with the old block, whose first columns are dA (when
    `need`), then the block's update. Returns dU = dL/d[A_last, 1, X] (B, n_last + 1 + n_in)."""
    theta, sizes = params.theta, params.sizes
    B, n = dA.shape
    U = top_inputs(scratch.acts, sizes, B)
    block = top_block(theta, sizes)
    dU = top_scratch(scratch.dacts, sizes, B)
    if need:
        gemm(False, True, 1.0, dcur, block, 0.0, dU)
        for b in range(B):
            for j in range(n):
                dA[b, j] = dU[b, j]
    if hyper.opt == OPT_SGD:
        gemm(True, False, -hyper.lr, U, dcur, 1.0, block)
    else:
        wo = weight_offset(sizes, sizes.shape[0] - 2)
        e = wo + block.size
        gemm(True, False, 1.0, U, dcur, 0.0, scratch.grad[wo:e].reshape(block.shape))
        adam_dense(theta[wo:e], scratch.grad[wo:e], adam.m[wo:e], adam.v[wo:e], hyper.lr, hyper.beta1, hyper.beta2,
                   hyper.eps, t)
    return dU


@njit(cache=True, fastmath=FAST, error_model="numpy")
def fused_step(ids, feats, targets, params, net, seed, step, hyper, t, adam, scratch):
    """One optimiser step on one minibatch, backward and update interleaved; returns the mean loss.

    Layer by layer from the top: dA = dcur @ W.T (with the old W), then W is updated (SGD: by BLAS straight
    into theta; Adam: via this block's gradient). Embedding rows get SGD straight from dX, or lazy Adam
    over the summed rows. t: Adam's 1-based step.
    """
    B = ids.shape[0]
    forward_core(ids, feats, params, net, seed, step, scratch, False)
    loss = loss_grad(scratch.Z[:B], targets, 1.0 / B, scratch.dZ[:B], net.loss_kind, scratch.lanes)
    if not np.isfinite(loss):
        return loss
    sizes = params.sizes
    n_layers = sizes.shape[0] - 1
    n_in, n_last = sizes[0], sizes[n_layers - 1]
    dcur = scratch.dZ[:B]
    dU = scratch.dZ[:1, :1]  # with direct connections: dL/d[A_last, 1, X] from the combined top product
    for l in range(n_layers - 1, -1, -1):
        need = l > 0 or hyper.update_E or hyper.update_F
        n = sizes[l]
        ao = acts_offset(sizes, l, B)
        dA = scratch.dacts[ao : ao + B * n].reshape(B, n)
        if net.has_direct and l == n_layers - 1:
            dU = top_step(params, hyper, t, adam, scratch, dcur, dA, need)
        else:
            layer_step(params, hyper, t, adam, scratch, dcur, dA, l, need, True)
        if l == 0 and net.has_direct and need:
            for b in range(B):
                for j in range(n_in):
                    dA[b, j] += dU[b, n_last + 1 + j]
        unit_grads(sizes, net, scratch, B, l, need)
        dcur = dA
    update_tables(ids, feats, scratch.dacts[0 : B * n_in].reshape(B, n_in), params, hyper, t, adam, scratch)
    return loss


# ---------------------------------------------------------------- the distinct-pairs step


@njit(cache=True, fastmath=FAST, error_model="numpy")
def number_pairs(ids, slot, pmap, words, offsets):
    """Number the distinct (position, word) pairs of a batch, position by position.

    pmap[b, p] = the pair of window b's word at position p; words[i] = pair i's word; pairs of position p
    are offsets[p]:offsets[p+1]. slot: (V,) int32, -1 on entry and on exit. Returns the number of pairs.
    """
    B, P = ids.shape
    n = 0
    for p in range(P):
        offsets[p] = n
        for b in range(B):
            r = ids[b, p]
            n = number_row(r, slot, words, n)
            pmap[b, p] = slot[r]
        for i in range(offsets[p], n):
            slot[words[i]] = -1
    offsets[P] = n
    return n


# The pair step's parallel pieces. Each task writes rows or columns no other task writes and every sum keeps its
# order, so the bits never depend on the thread count. The products of all positions are laid end to end and cut
# into PAIR_PARTS equal parts fixed by the shapes alone: two threads share a window's five positions evenly, and
# only the position a cut falls in takes two BLAS calls (cutting every position in two re-packed each W0_p twice,
# which cost one-thread training more than the second thread won). Parallel and cached: safe to load in any process
# once winner.core.runtime.init() has run (see runtime.py).
PAIR_PARTS = 2


@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def pair_hidden(Tp, pmap, bias, act, drop, seed, step, base, keep, H):
    """H[b] = act(bias + sum over positions p of Tp[pmap[b, p]]), then dropout: the first hidden layer of
    sgd_step_pairs, a window at a time while its row is in cache. keep: (B, m), written only when drop > 0
    (fill_dropout's masks, from index base)."""
    B, P = pmap.shape
    m = H.shape[1]
    scale = cast_like(1.0 / (1.0 - drop), H) if drop > 0.0 else cast_like(1.0, H)
    for b in prange(B):
        for j in range(m):
            H[b, j] = bias[j]
        for p in range(P):
            k = pmap[b, p]
            for j in range(m):
                H[b, j] += Tp[k, j]
        activate_row(H[b], act)
        if drop > 0.0:
            for j in range(m):
                keep[b, j] = 0.0 if hash_uniform(seed, step, base + b * m + j) < drop else scale
                H[b, j] *= keep[b, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def pair_sums(dH, pmap, n, S, bias_sum):
    """S[k] = the sum of dH's rows over the windows using pair k, and bias_sum = the sum of every row, a window
    at a time (in window order, as a column sum would add them). dH: (B, m); S: (>= n, m). (Serial on purpose:
    cut into blocks of columns for threads it ran several times slower, its rows no longer vectorised.)"""
    B, P = pmap.shape
    m = dH.shape[1]
    for k in range(n):
        for j in range(m):
            S[k, j] = 0.0
    for j in range(m):
        bias_sum[j] = 0.0
    for b in range(B):
        for p in range(P):
            k = pmap[b, p]
            for j in range(m):
                S[k, j] += dH[b, j]
        for j in range(m):
            bias_sum[j] += dH[b, j]


@njit(cache=True, parallel=True, error_model="numpy", fastmath=FAST)
def pair_products(transposed, A, W0, C, offsets, d):
    """For every position p, C[pairs of p] = A[pairs of p] @ W0_p (T from the embeddings, transposed=False) or
    @ W0_p.T (G from the summed gradients, transposed=True); the pairs of all positions in PAIR_PARTS parts."""
    P = offsets.shape[0] - 1
    for task in prange(PAIR_PARTS):
        lo, hi = part_bounds(offsets[P], PAIR_PARTS, task)
        for p in range(P):
            a, e = max(offsets[p], lo), min(offsets[p + 1], hi)
            if a < e:
                gemm_one_call(False, transposed, 1.0, A[a:e], W0[p * d : (p + 1) * d], 0.0, C[a:e])


@njit(cache=True, parallel=True, error_model="numpy", fastmath=FAST)
def pair_weight_update(Xp, S, W0, offsets, d, lr):
    """W0_p -= lr * Xp[pairs of p].T @ S[pairs of p] for every position p; the columns of all W0_p, end to end,
    in PAIR_PARTS parts (not the pairs: the product sums over them)."""
    P = offsets.shape[0] - 1
    m = W0.shape[1]
    for task in prange(PAIR_PARTS):
        lo, hi = part_bounds(P * m, PAIR_PARTS, task)
        for p in range(P):
            c0, c1 = max(p * m, lo) - p * m, min((p + 1) * m, hi) - p * m
            if c0 < c1:
                a, e = offsets[p], offsets[p + 1]
                gemm_one_call(True, False, -lr, Xp[a:e], S[a:e, c0:c1], 1.0, W0[p * d : (p + 1) * d, c0:c1])


@njit(cache=True, fastmath=FAST, error_model="numpy")
def pair_forward(ids, params, net, seed, step, scratch, pairs):
    """sgd_step_pairs's forward pass: T = E[w] @ W0_p once per distinct pair, then the layers as usual.
    Returns the number of pairs."""
    B = ids.shape[0]
    theta, sizes, E = params.theta, params.sizes, params.E
    n_in, H0 = sizes[0], sizes[1]
    d = E.shape[1]
    offsets, Xp, Tp = pairs.offsets, pairs.Xp, pairs.Tp
    n = number_pairs(ids, scratch.slotE, pairs.pmap, pairs.words, offsets)
    take_rows(E, pairs.words, 0, n, Xp)
    W0 = theta[0 : n_in * H0].reshape(n_in, H0)
    pair_products(False, Xp, W0, Tp, offsets, d)
    h0 = B * n_in
    H = scratch.acts[h0 : h0 + B * H0].reshape(B, H0)
    K1 = scratch.keep[h0 : h0 + B * H0].reshape(B, H0)
    pair_hidden(Tp, pairs.pmap, theta[n_in * H0 : n_in * H0 + H0], net.act, net.drop_hidden, seed, step, h0, K1, H)
    forward_layers(params, net, seed, step, scratch, B, 1, False)
    return n


@njit(cache=True, fastmath=FAST, error_model="numpy")
def pair_first_layer_update(dH, params, hyper, pairs, n):
    """sgd_step_pairs's update of W0, b0 and the used rows of E from dH (B, H0) = dL/d(first layer's output):
    the windows' dH summed per pair (S), then S @ W0_p.T for the word's gradient and Xp.T @ S for W0_p."""
    theta, sizes, E = params.theta, params.sizes, params.E
    n_in, H0 = sizes[0], sizes[1]
    d = E.shape[1]
    offsets, words, Xp, Sp, Gp = pairs.offsets, pairs.words, pairs.Xp, pairs.Sp, pairs.Gp
    W0 = theta[0 : n_in * H0].reshape(n_in, H0)
    b0 = theta[n_in * H0 : n_in * H0 + H0]
    S = Sp[:n]
    bias_sum = Sp[Sp.shape[0] - 1]
    pair_sums(dH, pairs.pmap, n, S, bias_sum)
    if hyper.update_E:  # the words' gradients from W0 before its update
        pair_products(True, S, W0, Gp, offsets, d)
    pair_weight_update(Xp, S, W0, offsets, d, hyper.lr)
    lr_t = cast_like(hyper.lr, theta)
    for j in range(H0):
        b0[j] -= lr_t * bias_sum[j]
    if hyper.update_E:
        c = cast_like(hyper.lr_embed, E)
        for i in range(n):
            r = words[i]
            for j in range(d):
                E[r, j] -= c * Gp[i, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sgd_step_pairs(ids, targets, params, net, seed, step, hyper, adam, scratch, pairs):
    """fused_step for plain SGD without input dropout, word features or direct connections, by distinct pairs.

    The first layer is linear in the embeddings, so a (position, word) pair used by k windows of the batch
    needs its products once, not k times: forward, the first layer's weight update and the words' gradients
    all shrink when running text repeats words. ids: (B, P); targets: (B,); pairs: PairScratch.
    """
    B = ids.shape[0]
    sizes = params.sizes
    n = pair_forward(ids, params, net, seed, step, scratch, pairs)
    loss = loss_grad(scratch.Z[:B], targets, 1.0 / B, scratch.dZ[:B], net.loss_kind, scratch.lanes)
    if not np.isfinite(loss):
        return loss
    dcur = scratch.dZ[:B]
    for l in range(sizes.shape[0] - 2, 0, -1):
        ao = acts_offset(sizes, l, B)
        dA = scratch.dacts[ao : ao + B * sizes[l]].reshape(B, sizes[l])
        layer_step(params, hyper, 0, adam, scratch, dcur, dA, l, True, False)
        unit_grads(sizes, net, scratch, B, l, True)
        dcur = dA
    pair_first_layer_update(dcur, params, hyper, pairs, n)
    return loss


# ---------------------------------------------------------------- many batches in one call


@njit(cache=True, fastmath=FAST, error_model="numpy")
def take_rows(src, order, s, e, dst):
    """dst[:e-s] = src[order[s:e]] without allocating. src, dst: (N, P) / (cap, P)."""
    for i in range(e - s):
        r = order[s + i]
        for j in range(src.shape[1]):
            dst[i, j] = src[r, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def stage_batch(ids, feats, targets, order, s, e, scratch):
    """Copy windows order[s:e] and their targets into scratch.ids, feats, targets (the batch train_step reads)."""
    take_rows(ids, order, s, e, scratch.ids)
    take_rows(feats, order, s, e, scratch.feats)
    for i in range(e - s):
        scratch.targets[i] = targets[order[s + i]]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def step_kind(params, net, hyper, B):
    """Which step trains a batch of B windows: the reference step with a weight penalty (or without a loss of
    the model's own); else plain SGD on one window sweeps it (sgd_example); plain SGD on >= PAIRS_MIN_BATCH
    windows without input dropout, feature table or direct connections goes by distinct (position, word)
    pairs (sgd_step_pairs); everything else takes fused_step."""
    if hyper.l2 != 0.0 or hyper.l1 != 0.0 or net.loss_kind == LOSS_NONE:
        return STEP_REFERENCE
    if hyper.opt != OPT_SGD:
        return STEP_FUSED
    if B == 1:
        return STEP_EXAMPLE
    if (B >= PAIRS_MIN_BATCH and net.drop_in == 0.0 and params.F.shape[1] == 0 and not net.has_direct
            and params.sizes.shape[0] >= 3):
        return STEP_PAIRS
    return STEP_FUSED


@njit(cache=True, inline="always")
def train_step(params, net, seed, step, hyper, adam, scratch, pairs, B):
    """One optimiser step on the B windows staged in scratch.ids/feats/targets, by the step step_kind
    chooses; returns the mean loss. Adam's step count is step + 1."""
    ids, feats, targets = scratch.ids[:B], scratch.feats[:B], scratch.targets[:B]
    kind = step_kind(params, net, hyper, B)
    if kind == STEP_PAIRS and pairs.pmap.shape[0] >= B:
        return sgd_step_pairs(ids, targets, params, net, seed, step, hyper, adam, scratch, pairs)
    if kind == STEP_EXAMPLE:
        return sgd_example(ids, feats, targets, params, net, seed, step, hyper, scratch)
    if kind != STEP_REFERENCE:
        return fused_step(ids, feats, targets, params, net, seed, step, hyper, step + 1, adam, scratch)
    loss, nE, nF = loss_and_grad(ids, feats, targets, params, net, seed, step, hyper.l2, hyper.l1, scratch)
    clear_slots(scratch.slotE, scratch.rowsE, nE)
    clear_slots(scratch.slotF, scratch.rowsF, nF)
    if np.isfinite(loss):
        apply_update(params, scratch.grad, scratch.rowsE, scratch.GE, nE, scratch.rowsF, scratch.GF, nF, hyper,
                     step + 1, adam)
    return loss


# The one training entry point, and the only compiled copy of the steps inlined into it: it may reassociate.
@njit(cache=True, fastmath=FAST_ENTRY, error_model="numpy")
def train_batches(ids, feats, targets, order, batch, params, net, seed, step0, hyper, adam, scratch, pairs):
    """Train on windows order[0], order[1], ... in minibatches of `batch`; returns the summed batch losses.

    ids, feats: (N, P) int32; targets: (N,) int64; order: (n,) int64 window numbers. Steps are numbered from
    step0 (dropout masks from (seed, step)). A non-finite loss stops the loop early and is returned so the
    caller can react. pairs: sgd_step_pairs's scratch, big enough for `batch` when that step applies.
    """
    total = 0.0
    step = step0
    N = order.shape[0]
    for s in range(0, N, batch):
        e = min(s + batch, N)
        B = e - s
        stage_batch(ids, feats, targets, order, s, e, scratch)
        loss = train_step(params, net, seed, step, hyper, adam, scratch, pairs, B)
        step += 1
        if not np.isfinite(loss):
            return loss
        total += loss * B
    return total
