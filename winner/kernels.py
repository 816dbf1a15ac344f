"""Every numba kernel of the window MLP core, and nothing else: no I/O, no classes.

Parameters live in one flat vector `theta` so that any depth of network is one array:
for each layer l, W_l (sizes[l], sizes[l+1]) then b_l (sizes[l+1],), then the optional direct
input→output matrix D (sizes[0], sizes[-1]) of Bengio et al. (2003). `sizes` is the int64 array
(n_in, hidden_1, ..., hidden_L, n_out). The embedding tables E (words) and F (a per-token feature
such as casing) are separate, because their gradients are sparse: only used rows are touched.

Activations of a batch live in one flat buffer `acts` (layer l's input at offset B*sum(sizes[:l])),
with a parallel buffer `keep` holding the dropout scale (0 or 1/(1-p)) of each unit.
Dropout masks come from a counter-based hash of (seed, step, index), so they are reproducible
without any random state inside numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

TANH, SIGMOID, RELU = 0, 1, 2
LOSS_SOFTMAX, LOSS_SIGMOID, LOSS_NONE = 0, 1, 2
OPT_SGD, OPT_ADAM = 0, 1


# ---------------------------------------------------------------- layout


@njit(cache=True)
def theta_size(sizes, has_direct):
    """Length of the flat parameter vector for layer sizes `sizes` (int64, (L+2,))."""
    n = 0
    for l in range(sizes.shape[0] - 1):
        n += sizes[l] * sizes[l + 1] + sizes[l + 1]
    if has_direct:
        n += sizes[0] * sizes[-1]
    return n


@njit(cache=True)
def weight_offset(sizes, layer):
    """Offset in theta of W_layer; b_layer follows it directly."""
    off = 0
    for l in range(layer):
        off += sizes[l] * sizes[l + 1] + sizes[l + 1]
    return off


@njit(cache=True)
def acts_offset(sizes, layer, batch):
    """Offset in the flat activation buffer of layer `layer`'s input for a batch of `batch` rows."""
    off = 0
    for l in range(layer):
        off += batch * sizes[l]
    return off


# ---------------------------------------------------------------- random numbers


@njit(cache=True)
def hash_uniform(seed, step, index):
    """A uniform number in [0, 1) from (seed, step, index): splitmix64 finaliser, no state."""
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    z ^= np.uint64(step) * np.uint64(0xBF58476D1CE4E5B9)
    z ^= np.uint64(index) * np.uint64(0x94D049BB133111EB)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def fill_dropout(keep, p, seed, step, base):
    """keep[i] = 0 with probability p, else 1/(1-p) (inverted dropout); all ones when p == 0."""
    if p <= 0.0:
        keep[:] = 1.0
        return
    scale = 1.0 / (1.0 - p)
    for i in range(keep.shape[0]):
        keep[i] = 0.0 if hash_uniform(seed, step, base + i) < p else scale


# ---------------------------------------------------------------- forward


@njit(cache=True)
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
            e = E[ids[b, p]]
            f = F[feats[b, p]]
            o = p * w
            for j in range(d):
                X[b, o + j] = e[j]
            for j in range(df):
                X[b, o + d + j] = f[j]


@njit(cache=True)
def activate(Z, act):
    """Apply the activation in place. Z: (B, H)."""
    flat = Z.reshape(-1)
    if act == TANH:
        for i in range(flat.shape[0]):
            flat[i] = np.tanh(flat[i])
    elif act == SIGMOID:
        for i in range(flat.shape[0]):
            flat[i] = 1.0 / (1.0 + np.exp(-flat[i]))
    else:
        for i in range(flat.shape[0]):
            if flat[i] < 0.0:
                flat[i] = 0.0


@njit(cache=True)
def forward(ids, feats, E, F, theta, sizes, has_direct, act, drop_in, drop_hidden, seed, step, acts, keep, Z):
    """Forward pass of a batch of windows, keeping what backward needs.

    ids, feats: (B, P) int32; acts, keep: flat (B*sum(sizes[:-1]),) buffers; Z: (B, n_out) logits out.
    drop_in / drop_hidden are dropout rates (0 at inference).
    """
    B = ids.shape[0]
    n_layers = sizes.shape[0] - 1
    n_in = sizes[0]
    X = acts[0 : B * n_in].reshape(B, n_in)
    gather(ids, feats, E, F, X)
    K = keep[0 : B * n_in]
    fill_dropout(K, drop_in, seed, step, 0)
    if drop_in > 0.0:
        Xf = acts[0 : B * n_in]
        for i in range(B * n_in):
            Xf[i] *= K[i]
    for l in range(n_layers):
        n, m = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        W = theta[wo : wo + n * m].reshape(n, m)
        bias = theta[wo + n * m : wo + n * m + m]
        ao = acts_offset(sizes, l, B)
        A = acts[ao : ao + B * n].reshape(B, n)
        if l == n_layers - 1:
            out = Z
        else:
            out = acts[ao + B * n : ao + B * n + B * m].reshape(B, m)
        np.dot(A, W, out)
        for b in range(B):
            for j in range(m):
                out[b, j] += bias[j]
        if l < n_layers - 1:
            activate(out, act)
            K = keep[ao + B * n : ao + B * n + B * m]
            fill_dropout(K, drop_hidden, seed, step, ao + B * n)
            if drop_hidden > 0.0:
                o = out.reshape(-1)
                for i in range(B * m):
                    o[i] *= K[i]
    if has_direct:
        n_out = sizes[-1]
        do = weight_offset(sizes, n_layers)
        D = theta[do : do + n_in * n_out].reshape(n_in, n_out)
        Z += np.dot(X, D)


# ---------------------------------------------------------------- losses


@njit(cache=True)
def softmax_xent(Z, targets, scale, dZ):
    """Summed cross-entropy of softmax(Z) against int targets; dZ = scale * (softmax(Z) - onehot).

    Z, dZ: (B, C); targets: (B,) int. Log-sum-exp with the max subtracted.
    """
    B, C = Z.shape
    loss = 0.0
    for b in range(B):
        mx = Z[b, 0]
        for c in range(1, C):
            if Z[b, c] > mx:
                mx = Z[b, c]
        s = 0.0
        for c in range(C):
            e = np.exp(Z[b, c] - mx)
            dZ[b, c] = e
            s += e
        loss += np.log(s) + mx - Z[b, targets[b]]
        inv = scale / s
        for c in range(C):
            dZ[b, c] *= inv
        dZ[b, targets[b]] -= scale
    return loss


@njit(cache=True)
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


@njit(cache=True)
def log_softmax_rows(Z, out):
    """out = log softmax(Z) row by row. Z, out: (B, C)."""
    B, C = Z.shape
    for b in range(B):
        mx = Z[b, 0]
        for c in range(1, C):
            if Z[b, c] > mx:
                mx = Z[b, c]
        s = 0.0
        for c in range(C):
            s += np.exp(Z[b, c] - mx)
        lse = mx + np.log(s)
        for c in range(C):
            out[b, c] = Z[b, c] - lse


# ---------------------------------------------------------------- backward


@njit(cache=True)
def backward(theta, sizes, has_direct, act, acts, keep, dZ, dacts, grad):
    """Backprop dZ (B, n_out) through the layers: grad (theta-shaped) += dL/dtheta.

    dacts (same layout as acts) receives dL/d(layer input); its first B*n_in entries are dL/dX,
    already multiplied by the input dropout scale, ready for `scatter_rows`.
    """
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
        gW += np.dot(A.T, dcur)
        gb = grad[wo + n * m : wo + n * m + m]
        for b in range(B):
            for j in range(m):
                gb[j] += dcur[b, j]
        dA = dacts[ao : ao + B * n].reshape(B, n)
        np.dot(dcur, W.T, dA)
        if l == 0 and has_direct:
            n_out = sizes[-1]
            do = weight_offset(sizes, n_layers)
            D = theta[do : do + n_in * n_out].reshape(n_in, n_out)
            gD = grad[do : do + n_in * n_out].reshape(n_in, n_out)
            gD += np.dot(A.T, dZ)
            dA += np.dot(dZ, D.T)
        dflat = dacts[ao : ao + B * n]
        K = keep[ao : ao + B * n]
        aflat = acts[ao : ao + B * n]
        if l == 0:
            for i in range(B * n):
                dflat[i] *= K[i]
        else:
            for i in range(B * n):
                k = K[i]
                if k == 0.0:
                    dflat[i] = 0.0
                    continue
                a = aflat[i] / k  # the activation before dropout
                if act == TANH:
                    dflat[i] *= k * (1.0 - a * a)
                elif act == SIGMOID:
                    dflat[i] *= k * a * (1.0 - a)
                else:
                    dflat[i] = dflat[i] * k if a > 0.0 else 0.0
        dcur = dA


@njit(cache=True)
def scatter_rows(ids, dX, col0, width, stride, slot, rows, G, n_rows):
    """Add each window position's slice of dX into a compact per-row gradient buffer.

    ids: (B, P) int32 table rows; dX: (B, P*stride); the table's slice of position p is
    dX[:, p*stride + col0 : p*stride + col0 + width]. slot: (V,) int32, -1 for rows not yet in this
    batch's buffer; rows: (cap,) int32 row ids; G: (cap, width). A row used twice gets both
    contributions. Returns the new number of rows in the buffer.
    """
    B, P = ids.shape
    for b in range(B):
        for p in range(P):
            r = ids[b, p]
            k = slot[r]
            if k < 0:
                k = n_rows
                slot[r] = k
                rows[k] = r
                n_rows += 1
                for j in range(width):
                    G[k, j] = 0.0
            o = p * stride + col0
            for j in range(width):
                G[k, j] += dX[b, o + j]
    return n_rows


@njit(cache=True)
def clear_slots(slot, rows, n_rows):
    """Reset slot[rows[:n_rows]] to -1 so the buffer can be reused by the next batch."""
    for k in range(n_rows):
        slot[rows[k]] = -1


# ---------------------------------------------------------------- regularisation and updates


@njit(cache=True)
def add_penalty_grad(theta, weight_mask, l2, l1, grad):
    """grad += l2*W + l1*sign(W) on weights only (weight_mask 1), returns 0.5*l2*|W|^2 + l1*|W|_1."""
    pen = 0.0
    if l2 == 0.0 and l1 == 0.0:
        return pen
    for i in range(theta.shape[0]):
        if weight_mask[i]:
            w = theta[i]
            pen += 0.5 * l2 * w * w + l1 * abs(w)
            grad[i] += l2 * w + l1 * np.sign(w)
    return pen


@njit(cache=True)
def sgd_dense(theta, grad, lr):
    for i in range(theta.shape[0]):
        theta[i] -= lr * grad[i]


@njit(cache=True)
def sgd_rows(table, rows, G, n_rows, lr):
    for k in range(n_rows):
        r = rows[k]
        for j in range(table.shape[1]):
            table[r, j] -= lr * G[k, j]


@njit(cache=True)
def adam_dense(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """One Adam step (Kingma & Ba 2015) with bias correction at step t (1-based)."""
    c1 = 1.0 - beta1**t
    c2 = 1.0 - beta2**t
    step = lr * np.sqrt(c2) / c1
    for i in range(theta.shape[0]):
        g = grad[i]
        m[i] = beta1 * m[i] + (1.0 - beta1) * g
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g
        theta[i] -= step * m[i] / (np.sqrt(v[i]) + eps)


@njit(cache=True)
def adam_rows(table, rows, G, n_rows, m, v, lr, beta1, beta2, eps, t):
    """Lazy (sparse) Adam: only the rows used in this batch have their moments decayed and updated."""
    c1 = 1.0 - beta1**t
    c2 = 1.0 - beta2**t
    step = lr * np.sqrt(c2) / c1
    for k in range(n_rows):
        r = rows[k]
        for j in range(table.shape[1]):
            g = G[k, j]
            m[r, j] = beta1 * m[r, j] + (1.0 - beta1) * g
            v[r, j] = beta2 * v[r, j] + (1.0 - beta2) * g * g
            table[r, j] -= step * m[r, j] / (np.sqrt(v[r, j]) + eps)


# ---------------------------------------------------------------- fused loops over many batches


@njit(cache=True)
def take_rows(src, order, s, e, dst):
    """dst[:e-s] = src[order[s:e]] without allocating. src, dst: (N, P) / (cap, P)."""
    for i in range(e - s):
        r = order[s + i]
        for j in range(src.shape[1]):
            dst[i, j] = src[r, j]


@njit(cache=True)
def apply_update(theta, grad, E, F, rowsE, GE, nE, rowsF, GF, nF, update_E, update_F,
                 opt, lr, lr_embed, beta1, beta2, eps, t, m, v, mE, vE, mF, vF):
    """One optimiser step: dense for theta, lazy row updates for the embedding tables."""
    if opt == OPT_SGD:
        sgd_dense(theta, grad, lr)
        if update_E:
            sgd_rows(E, rowsE, GE, nE, lr_embed)
        if update_F:
            sgd_rows(F, rowsF, GF, nF, lr_embed)
    else:
        adam_dense(theta, grad, m, v, lr, beta1, beta2, eps, t)
        if update_E:
            adam_rows(E, rowsE, GE, nE, mE, vE, lr_embed, beta1, beta2, eps, t)
        if update_F:
            adam_rows(F, rowsF, GF, nF, mF, vF, lr_embed, beta1, beta2, eps, t)


@njit(cache=True)
def loss_and_grad(ids, feats, targets, E, F, theta, sizes, has_direct, act, loss_kind,
                  drop_in, drop_hidden, seed, step, weight_mask, l2, l1,
                  acts, keep, Z, dZ, dacts, grad, slotE, rowsE, GE, slotF, rowsF, GF):
    """Mean loss of one batch (plus the weight penalty) and its gradients.

    grad is overwritten with dL/dtheta; the touched rows of E and F and their gradients are left in
    (rowsE, GE) and (rowsF, GF), whose counts are returned: (loss, nE, nF). The caller clears the slots.
    """
    B = ids.shape[0]
    forward(ids, feats, E, F, theta, sizes, has_direct, act, drop_in, drop_hidden, seed, step, acts, keep,
            Z[:B])
    scale = 1.0 / B
    if loss_kind == LOSS_SOFTMAX:
        loss = softmax_xent(Z[:B], targets, scale, dZ[:B])
    else:
        loss = sigmoid_xent(Z[:B], targets, scale, dZ[:B])
    loss *= scale
    grad[:] = 0.0
    backward(theta, sizes, has_direct, act, acts, keep, dZ[:B], dacts, grad)
    loss += add_penalty_grad(theta, weight_mask, l2, l1, grad)
    d = E.shape[1]
    stride = d + F.shape[1]
    dX = dacts[0 : B * sizes[0]].reshape(B, sizes[0])
    nE = scatter_rows(ids, dX, 0, d, stride, slotE, rowsE, GE, 0)
    nF = scatter_rows(feats, dX, d, F.shape[1], stride, slotF, rowsF, GF, 0)
    return loss, nE, nF


@njit(cache=True)
def train_batches(ids, feats, targets, order, start, stop, batch, ids_b, feats_b, targets_b,
                  E, F, theta, sizes, has_direct, act, loss_kind, drop_in, drop_hidden, seed, step0,
                  weight_mask, l2, l1, opt, lr, lr_embed, beta1, beta2, eps, m, v, mE, vE, mF, vF,
                  update_E, update_F, acts, keep, Z, dZ, dacts, grad,
                  slotE, rowsE, GE, slotF, rowsF, GF):
    """Train on windows order[start:stop] in minibatches of `batch`; returns the summed batch losses.

    Steps are numbered from step0 (dropout masks and Adam's bias correction use step+1).
    A non-finite loss stops the loop early and is returned so the caller can react.
    """
    total = 0.0
    step = step0
    for s in range(start, stop, batch):
        e = min(s + batch, stop)
        B = e - s
        take_rows(ids, order, s, e, ids_b)
        take_rows(feats, order, s, e, feats_b)
        for i in range(B):
            targets_b[i] = targets[order[s + i]]
        loss, nE, nF = loss_and_grad(ids_b[:B], feats_b[:B], targets_b[:B], E, F, theta, sizes, has_direct,
                                     act, loss_kind, drop_in, drop_hidden, seed, step, weight_mask, l2, l1,
                                     acts, keep, Z, dZ, dacts, grad, slotE, rowsE, GE, slotF, rowsF, GF)
        clear_slots(slotE, rowsE, nE)
        clear_slots(slotF, rowsF, nF)
        step += 1
        if not np.isfinite(loss):
            return loss
        apply_update(theta, grad, E, F, rowsE, GE, nE, rowsF, GF, nF, update_E, update_F,
                     opt, lr, lr_embed, beta1, beta2, eps, step, m, v, mE, vE, mF, vF)
        total += loss * B
    return total


@njit(cache=True)
def predict_batches(ids, feats, E, F, theta, sizes, has_direct, act, batch, acts, keep, Z, out):
    """Logits of every window, batch by batch, with dropout off. out: (N, n_out)."""
    N = ids.shape[0]
    for s in range(0, N, batch):
        e = min(s + batch, N)
        B = e - s
        forward(ids[s:e], feats[s:e], E, F, theta, sizes, has_direct, act, 0.0, 0.0, 0, 0, acts, keep, Z[:B])
        out[s:e] = Z[:B]


# ---------------------------------------------------------------- decoding


@njit(cache=True)
def viterbi(logp, allowed, start_ok, end_ok, out):
    """Best tag sequence under hard transition constraints.

    logp: (n, T) per-token log-probabilities; allowed: (T, T) bool, allowed[i, j] = tag j may follow i;
    start_ok / end_ok: (T,) bool; out: (n,) int32 best path. Falls back to no constraints if none is valid.
    """
    n, T = logp.shape
    if n == 0:
        return
    NEG = -1e300
    score = np.empty((n, T))
    back = np.zeros((n, T), dtype=np.int32)
    for j in range(T):
        score[0, j] = logp[0, j] if start_ok[j] else NEG
    for t in range(1, n):
        for j in range(T):
            best, arg = NEG, 0
            for i in range(T):
                if allowed[i, j] and score[t - 1, i] > best:
                    best, arg = score[t - 1, i], i
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
