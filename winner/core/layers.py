"""The window MLP's layers as kernels: the parameter layout, forward, the losses, backward.

Parameters live in one flat vector `theta` so that any depth of network is one array:
for each layer l, W_l (sizes[l], sizes[l+1]) then b_l (sizes[l+1],), then the optional direct
input→output matrix D (sizes[0], sizes[-1]) of Bengio et al. (2003). `sizes` is the int64 array
(n_in, hidden_1, ..., hidden_L, n_out). The embedding tables E (words) and F (a per-token feature
such as casing) are separate, because their gradients are sparse: only used rows are touched.

Activations of a batch live in one flat buffer `acts` (layer l's input at offset B*sum(sizes[:l])),
with a parallel buffer `keep` holding the dropout scale (0 or 1/(1-p)) of each unit.
The kernels take these arrays grouped in the NamedTuples below, built once by WindowMLP.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from winner.core.blas import gemm
from winner.core.fastmath import (
    FAST,
    FAST_ENTRY,
    TANH,
    activation,
    backprop_units,
    cast_like,
    fast_exp,
    fast_tanh,
    fill_dropout,
    fixed_sum,
)

LOSS_SOFTMAX, LOSS_SIGMOID, LOSS_NONE = 0, 1, 2


class Params(NamedTuple):
    """A model's parameters as the kernels take them."""

    E: np.ndarray  # (V, d) word embeddings
    F: np.ndarray  # (Vf, df) feature embeddings
    theta: np.ndarray  # (theta_size,) every layer's W and b, then D
    sizes: np.ndarray  # (L+2,) int64 layer sizes
    weight_mask: np.ndarray  # (theta_size,) uint8: 1 on weights (what a penalty applies to), 0 on biases


class Net(NamedTuple):
    """A model's scalars: its shape of computation and dropout rates (0 at inference)."""

    has_direct: bool
    act: int  # TANH, SIGMOID or RELU
    loss_kind: int  # LOSS_SOFTMAX, LOSS_SIGMOID or LOSS_NONE
    drop_in: float
    drop_hidden: float


class Scratch(NamedTuple):
    """Everything a step writes besides the parameters, for batches of up to `cap` windows."""

    ids: np.ndarray  # (cap, P) int32: a batch's windows, staged by train_batches
    feats: np.ndarray  # (cap, P) int32
    targets: np.ndarray  # (cap,) int64
    acts: np.ndarray  # flat: the layers' inputs (and, with direct connections, top_scratch's region)
    keep: np.ndarray  # like acts: dropout scales
    dacts: np.ndarray  # like acts: dL/d(layer input)
    Z: np.ndarray  # (cap, n_out) logits
    dZ: np.ndarray  # (cap, n_out)
    grad: np.ndarray  # (theta_size,) dense gradient of theta
    slotE: np.ndarray  # (V,) int32, -1 between batches: a row's place in rowsE/GE
    rowsE: np.ndarray  # (<= cap * P,) int32: the rows of E a batch used
    GE: np.ndarray  # (<= cap * P, d): their gradients
    slotF: np.ndarray  # (Vf,) int32, the same for F
    rowsF: np.ndarray
    GF: np.ndarray
    lanes: np.ndarray  # (SUM_LANES,): the running sums of fixed-order sums (fastmath.fixed_sum)


# ---------------------------------------------------------------- layout


@njit(cache=True, fastmath=FAST, error_model="numpy")
def theta_size(sizes, has_direct):
    """Length of the flat parameter vector for layer sizes `sizes` (int64, (L+2,))."""
    n = 0
    for l in range(sizes.shape[0] - 1):
        n += sizes[l] * sizes[l + 1] + sizes[l + 1]
    if has_direct:
        n += sizes[0] * sizes[-1]
    return n


@njit(cache=True, fastmath=FAST, error_model="numpy")
def weight_offset(sizes, layer):
    """Offset in theta of W_layer; b_layer follows it directly."""
    off = 0
    for l in range(layer):
        off += sizes[l] * sizes[l + 1] + sizes[l + 1]
    return off


@njit(cache=True, fastmath=FAST, error_model="numpy")
def acts_offset(sizes, layer, batch):
    """Offset in the flat activation buffer of layer `layer`'s input for a batch of `batch` rows."""
    off = 0
    for l in range(layer):
        off += batch * sizes[l]
    return off


@njit(cache=True, fastmath=FAST, error_model="numpy")
def top_block(theta, sizes):
    """[W_last; b_last; D] as one (n_last + 1 + n_in, n_out) matrix: they are contiguous in theta."""
    n_layers = sizes.shape[0] - 1
    n_last, n_out, n_in = sizes[n_layers - 1], sizes[-1], sizes[0]
    wo = weight_offset(sizes, n_layers - 1)
    width = n_last + 1 + n_in
    return theta[wo : wo + width * n_out].reshape(width, n_out)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def top_scratch(buf, sizes, B):
    """A (B, n_last + 1 + n_in) array in the region after the layers of `buf` (acts or dacts), which
    WindowMLP.buffers adds for models with direct connections; a new array if `buf` has no such region."""
    n_layers = sizes.shape[0] - 1
    width = sizes[n_layers - 1] + 1 + sizes[0]
    o = acts_offset(sizes, n_layers, B)
    if buf.shape[0] >= o + B * width:
        return buf[o : o + B * width].reshape(B, width)
    return np.empty((B, width), buf.dtype)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def top_inputs(acts, sizes, B):
    """U = [A_last, 1, X] (B, n_last + 1 + n_in): the input rows of top_block, written into top_scratch."""
    n_layers = sizes.shape[0] - 1
    n_last, n_in = sizes[n_layers - 1], sizes[0]
    ao = acts_offset(sizes, n_layers - 1, B)
    U = top_scratch(acts, sizes, B)
    for b in range(B):
        for j in range(n_last):
            U[b, j] = acts[ao + b * n_last + j]
        U[b, n_last] = 1.0
        for j in range(n_in):
            U[b, n_last + 1 + j] = acts[b * n_in + j]
    return U


# ---------------------------------------------------------------- forward


@njit(cache=True, fastmath=FAST, error_model="numpy")
def gather(ids, feats, E, F, X):
    """Concatenate each window's word and feature embeddings.

    ids, feats: (B, P) int32; E: (V, d); F: (Vf, df); X: (B, P*(d+df)) output.
    """
    B, P = ids.shape
    d = E.shape[1]
    df = F.shape[1]
    w = d + df
    for b in range(B):
        for p in range(P):
            r = ids[b, p]
            rf = feats[b, p]
            o = p * w
            for j in range(d):
                X[b, o + j] = E[r, j]
            for j in range(df):
                X[b, o + d + j] = F[rf, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def bias_activate(out, bias, act, apply):
    """out = act(out + bias) row by row (just out + bias when not apply). out: (B, m); bias: (m,)."""
    B, m = out.shape
    for b in range(B):
        o = out[b]
        if not apply:
            for j in range(m):
                o[j] += bias[j]
        elif act == TANH:
            for j in range(m):
                o[j] = fast_tanh(o[j] + bias[j])
        else:
            for j in range(m):
                o[j] = activation(o[j] + bias[j], act)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def forward(ids, feats, params, net, seed, step, scratch):
    """Forward pass of a batch of B windows, keeping what backward needs; the logits go to scratch.Z[:B].

    ids, feats: (B, P) int32. Dropout at net's rates, masks from (seed, step).
    """
    forward_core(ids, feats, params, net, seed, step, scratch, True)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def forward_core(ids, feats, params, net, seed, step, scratch, fill_keep):
    """`forward`; without fill_keep, scratch.keep is only written where a dropout rate is > 0 (fused paths)."""
    forward_input(ids, feats, params, net, seed, step, scratch, fill_keep)
    forward_layers(params, net, seed, step, scratch, ids.shape[0], 0, fill_keep)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def forward_input(ids, feats, params, net, seed, step, scratch, fill_keep):
    """The gathered embeddings X = the first layer's input in scratch.acts, with input dropout applied."""
    B = ids.shape[0]
    n_in = params.sizes[0]
    X = scratch.acts[0 : B * n_in].reshape(B, n_in)
    gather(ids, feats, params.E, params.F, X)
    if net.drop_in > 0.0 or fill_keep:
        K = scratch.keep[0 : B * n_in]
        fill_dropout(K, net.drop_in, seed, step, 0)
        if net.drop_in > 0.0:
            Xf = scratch.acts[0 : B * n_in]
            for i in range(B * n_in):
                Xf[i] *= K[i]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def forward_layers(params, net, seed, step, scratch, B, l0, fill_keep):
    """Layers l0, l0+1, ... of the forward pass, from the input of layer l0 already in scratch.acts."""
    theta, sizes, acts = params.theta, params.sizes, scratch.acts
    Z = scratch.Z[:B]
    n_layers = sizes.shape[0] - 1
    for l in range(l0, n_layers - 1):
        hidden_layer(params, net, seed, step, scratch, B, l, fill_keep)
    l = n_layers - 1
    n, m = sizes[l], sizes[l + 1]
    wo = weight_offset(sizes, l)
    if net.has_direct:
        # W_last, b_last and D sit back to back in theta: Z = [A, 1, X] @ [W_last; b_last; D] in one product
        U = top_inputs(acts, sizes, B)
        gemm(False, False, 1.0, U, top_block(theta, sizes), 0.0, Z)
        return
    ao = acts_offset(sizes, l, B)
    gemm(False, False, 1.0, acts[ao : ao + B * n].reshape(B, n), theta[wo : wo + n * m].reshape(n, m), 0.0, Z)
    bias_activate(Z, theta[wo + n * m : wo + n * m + m], net.act, False)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def hidden_layer(params, net, seed, step, scratch, B, l, fill_keep):
    """Hidden layer l of the forward pass: its output act(A W + b), with dropout, after its input in acts."""
    theta, sizes, acts, keep, drop = params.theta, params.sizes, scratch.acts, scratch.keep, net.drop_hidden
    n, m = sizes[l], sizes[l + 1]
    wo = weight_offset(sizes, l)
    ao = acts_offset(sizes, l, B)
    out = acts[ao + B * n : ao + B * n + B * m].reshape(B, m)
    gemm(False, False, 1.0, acts[ao : ao + B * n].reshape(B, n), theta[wo : wo + n * m].reshape(n, m), 0.0, out)
    bias_activate(out, theta[wo + n * m : wo + n * m + m], net.act, True)
    if drop > 0.0 or fill_keep:
        K = keep[ao + B * n : ao + B * n + B * m]
        fill_dropout(K, drop, seed, step, ao + B * n)
        if drop > 0.0:
            o = out.reshape(-1)
            for i in range(B * m):
                o[i] *= K[i]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def predict_batches(ids, feats, params, net, batch, scratch, out):
    """Logits of every window, batch by batch, with dropout off. out: (N, n_out)."""
    quiet = Net(net.has_direct, net.act, net.loss_kind, 0.0, 0.0)
    N = ids.shape[0]
    for s in range(0, N, batch):
        e = min(s + batch, N)
        B = e - s
        forward_core(ids[s:e], feats[s:e], params, quiet, 0, 0, scratch, False)
        out[s:e] = scratch.Z[:B]


# ---------------------------------------------------------------- losses


@njit(cache=True, fastmath=FAST, error_model="numpy")
def loss_grad(Z, targets, scale, dZ, loss_kind, lanes):
    """scale * the summed loss of the logits Z (B, n_out) against targets (B,), and dZ = its gradient: the one
    place a loss is chosen. Softmax cross-entropy over classes, or binary cross-entropy of Z[:, 0]."""
    if loss_kind == LOSS_SOFTMAX:
        return softmax_xent(Z, targets, scale, dZ, lanes) * scale
    return sigmoid_xent(Z, targets, scale, dZ) * scale


@njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def larger(m, v):
    """v if it is larger than m, else m (m when v is NaN)."""
    return v if v > m else m


@njit(cache=True, fastmath=FAST, error_model="numpy")
def row_max(z):
    """max of a 1-d array. Eight running maxima in scalars, which LLVM packs into one vector register: it
    will not vectorise a single running max, and an array of lanes would be allocated on every call.
    NaN entries are skipped, which is safe where the caller goes on to exponentiate every entry: a NaN then
    still reaches the loss and the divergence check."""
    n = z.shape[0]
    full = n - n % 8
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = z[0]
    for i in range(0, full, 8):
        m0, m1, m2, m3 = larger(m0, z[i]), larger(m1, z[i + 1]), larger(m2, z[i + 2]), larger(m3, z[i + 3])
        m4, m5, m6, m7 = larger(m4, z[i + 4]), larger(m5, z[i + 5]), larger(m6, z[i + 6]), larger(m7, z[i + 7])
    mx = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for c in range(full, n):
        if z[c] > mx:
            mx = z[c]
    return mx


@njit(cache=True, fastmath=FAST, error_model="numpy")
def softmax_xent(Z, targets, scale, dZ, lanes):
    """Summed cross-entropy of softmax(Z) against int targets; dZ = scale * (softmax(Z) - onehot).

    Z, dZ: (B, C); targets: (B,) int. Log-sum-exp with the max subtracted; every loop vectorises (with a
    language model's C = |V| the exponentials cost as much as the matrix products otherwise).
    """
    B, C = Z.shape
    loss = 0.0
    for b in range(B):
        mx = row_max(Z[b])
        for c in range(C):
            dZ[b, c] = fast_exp(Z[b, c] - mx)
        # summed in Z's precision: a float32 sum vectorises twice as wide, and its rounding, ~1e-6 relative
        # here, is below what float32 probabilities carry anyway
        s = fixed_sum(dZ[b], lanes)
        loss += np.log(np.float64(s)) + mx - Z[b, targets[b]]
        inv = cast_like(scale / s, dZ)
        for c in range(C):
            dZ[b, c] *= inv
        dZ[b, targets[b]] -= scale
    return loss


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sigmoid_xent(Z, targets, scale, dZ):
    """Summed binary cross-entropy of sigmoid(Z[:, 0]) against 0/1 targets; dZ = scale*(sigmoid - y).

    Written as softplus so large |z| neither overflows nor loses precision.
    """
    B = Z.shape[0]
    loss = 0.0
    for b in range(B):
        z = Z[b, 0]
        y = targets[b]
        # -log sigmoid(z) = softplus(-z); -log(1 - sigmoid(z)) = softplus(z)
        t = -z if y == 1 else z
        loss += max(t, 0.0) + np.log1p(np.exp(-abs(t)))
        p = 1.0 / (1.0 + np.exp(-z))
        dZ[b, 0] = scale * (p - y)
    return loss


@njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def log_softmax_row(Z, b, out):
    """out[b] = log softmax(Z[b]); out may be Z. Z, out: (B, C). Inlined into its callers (log_softmax_rows,
    lookup_logits) with 2-d indexing, so that their loops keep the shape that decides how the sum vectorises."""
    mx = row_max(Z[b])
    s = 0.0
    for c in range(Z.shape[1]):
        s += fast_exp(Z[b, c] - mx)
    lse = mx + np.log(s)
    for c in range(Z.shape[1]):
        out[b, c] = Z[b, c] - lse


@njit(cache=True, fastmath=FAST_ENTRY, error_model="numpy")
def log_softmax_rows(Z, out):
    """out = log softmax(Z) row by row. Z, out: (B, C)."""
    for b in range(Z.shape[0]):
        log_softmax_row(Z, b, out)


# ---------------------------------------------------------------- backward


@njit(cache=True, fastmath=FAST, error_model="numpy")
def backward(params, net, scratch, dZ):
    """Backprop dZ (B, n_out) through the layers: scratch.grad (theta-shaped) += dL/dtheta.

    scratch.dacts (same layout as acts) receives dL/d(layer input); its first B*n_in entries are dL/dX,
    already multiplied by the input dropout scale, ready for `scatter_rows`.
    """
    theta, sizes = params.theta, params.sizes
    acts, keep, dacts, grad = scratch.acts, scratch.keep, scratch.dacts, scratch.grad
    B = dZ.shape[0]
    n_layers = sizes.shape[0] - 1
    n_in = sizes[0]
    dcur = dZ
    for l in range(n_layers - 1, -1, -1):
        n, m = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        W = theta[wo : wo + n * m].reshape(n, m)
        ao = acts_offset(sizes, l, B)
        A = acts[ao : ao + B * n].reshape(B, n)
        gW = grad[wo : wo + n * m].reshape(n, m)
        gemm(True, False, 1.0, A, dcur, 1.0, gW)
        gb = grad[wo + n * m : wo + n * m + m]
        for b in range(B):
            for j in range(m):
                gb[j] += dcur[b, j]
        dA = dacts[ao : ao + B * n].reshape(B, n)
        gemm(False, True, 1.0, dcur, W, 0.0, dA)
        if l == 0 and net.has_direct:
            n_out = sizes[-1]
            do = weight_offset(sizes, n_layers)
            D = theta[do : do + n_in * n_out].reshape(n_in, n_out)
            gD = grad[do : do + n_in * n_out].reshape(n_in, n_out)
            gemm(True, False, 1.0, A, dZ, 1.0, gD)
            gemm(False, True, 1.0, dZ, D, 1.0, dA)
        dflat = dacts[ao : ao + B * n]
        K = keep[ao : ao + B * n]
        aflat = acts[ao : ao + B * n]
        if l == 0:
            for i in range(B * n):
                dflat[i] *= K[i]
        else:
            backprop_units(dflat, aflat, K, net.act)
        dcur = dA
