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

Call winner.core.runtime.init() before the first kernel call of a process (WindowMLP does): it registers the BLAS
the products link to and launches numba's threading layer, without which a kernel loaded from numba's cache
that reaches a parallel kernel can crash (see runtime.py).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from winner.core.cblas import CBLAS_NO_TRANS, CBLAS_ROW_MAJOR, CBLAS_TRANS, cblas_signature

TANH, SIGMOID, RELU = 0, 1, 2
LOSS_SOFTMAX, LOSS_SIGMOID, LOSS_NONE = 0, 1, 2
OPT_SGD, OPT_ADAM = 0, 1
PAIRS_MIN_BATCH = 64  # below this, few (position, word) pairs repeat in a batch: sgd_step_pairs would not pay

# Fast paths may reassociate float sums so that row loops vectorise (deterministic for a given build), but
# never assume finite values: the divergence check (np.isfinite of the loss) must survive.
FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


# ---------------------------------------------------------------- BLAS and scalar helpers


# Every product goes through one cblas_?gemm under a fixed name, so that numba's cached kernels link to it
# whichever library is behind it; winner.core.runtime.init() registers the name (numpy's OpenBLAS or scipy's).
_CBLAS = {types.float32: types.ExternalFunction("winner_cblas_sgemm", cblas_signature(types.float32)),
          types.float64: types.ExternalFunction("winner_cblas_dgemm", cblas_signature(types.float64))}


@njit(cache=True)
def scale_rows(C, beta):
    """C = beta * C, with beta = 0 writing zeros (BLAS's rule: C's old values may be NaN)."""
    m, n = C.shape
    for i in range(m):
        for j in range(n):
            C[i, j] = beta * C[i, j] if beta != 0.0 else 0.0


def gemm(trans_a, trans_b, alpha, A, B, beta, C):
    """C = alpha * op(A) @ op(B) + beta * C, op(X) = X.T when trans_x; callable from jitted code only.

    A, B, C: 2-D arrays of one float dtype whose rows are contiguous (row stride may be larger).
    """
    raise TypeError("kernels.gemm is only callable from jitted code")


@overload(gemm)
def _gemm_overload(trans_a, trans_b, alpha, A, B, beta, C):
    cblas = _CBLAS[A.dtype]
    dt = np.float32 if A.dtype == types.float32 else np.float64

    def impl(trans_a, trans_b, alpha, A, B, beta, C):
        m, n = C.shape
        k = A.shape[0] if trans_a else A.shape[1]
        if m == 0 or n == 0:
            return
        if k == 0:
            scale_rows(C, beta)
            return
        if m == 1:  # a vector times a matrix: a plain loop beats BLAS here (scipy's OpenBLAS ~10x slower)
            vector_times_matrix(trans_a, trans_b, alpha, A, B, beta, C[0])
            return
        cblas(CBLAS_ROW_MAJOR, CBLAS_TRANS if trans_a else CBLAS_NO_TRANS, CBLAS_TRANS if trans_b else CBLAS_NO_TRANS,
              m, n, k, dt(alpha), A.ctypes, A.strides[0] // A.itemsize, B.ctypes, B.strides[0] // B.itemsize,
              dt(beta), C.ctypes, C.strides[0] // C.itemsize)

    return impl


@njit(cache=True, inline="always", error_model="numpy")
def _tanh_rational(x):
    """tanh(x) by Eigen's 13/6 rational fit, evaluated in float64: under 3 float32 ulp from tanh, vectorises."""
    if x > 9.0:
        x = 9.0
    elif x < -9.0:
        x = -9.0
    x2 = x * x
    p = x * (4.89352455891786e-03 + x2 * (6.37261928875436e-04 + x2 * (1.48572235717979e-05 + x2 * (
        5.12229709037114e-08 + x2 * (-8.60467152213735e-11 + x2 * (2.00018790482477e-13
                                                                   + x2 * -2.76076847742355e-16))))))
    q = 4.89352518554385e-03 + x2 * (2.26843463243900e-03 + x2 * (1.18534705686654e-04 + x2 * 1.19825839466702e-06))
    return p / q


def float32_fast_path(exact, float32_fit, doc: str):
    """A jit-callable function of x: `float32_fit` (a vectorisable float64 fit, rounded) when x is float32,
    the math library's `exact` otherwise, so float64 gradient checks keep exact values."""
    def fn(x):
        return exact(x)
    fn.__doc__ = doc

    @overload(fn)
    def _overload(x):
        if x == types.float32:
            def impl32(x):
                return np.float32(float32_fit(np.float64(x)))
            return impl32

        def impl(x):
            return exact(x)
        return impl
    return fn


fast_tanh = float32_fast_path(np.tanh, _tanh_rational, "tanh in the precision of x: the rational fit for float32 "
                                                       "(libm's tanhf does not vectorise), np.tanh else.")


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE bit pattern is the int64 `bits` (a register bitcast: vectorises)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(cache=True, inline="always", error_model="numpy")
def _exp_poly(x):
    """exp(x) in float64 from a float32 argument: x = n ln2 + r, |r| <= ln2/2, e^r by its degree-7 Taylor
    polynomial (error < 1e-8, far below float32's eps), 2^n put straight into the exponent bits.

    Rounded to float32 it matches expf to the last bit on all but ties; NaN propagates, +-inf give inf / 0.
    """
    if x > 709.0:
        x = 709.0
    elif x < -708.0:  # 2^n must stay a normal float64; exp(-708) rounds to 0 in float32 anyway
        x = -708.0
    n = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10  # ln2 split in two: r exact to ~1e-17
    p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (
        1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))))
    return p * _float64_from_bits((np.int64(n) + 1023) << 52)


fast_exp = float32_fast_path(np.exp, _exp_poly, "exp in the precision of x: the polynomial for float32 "
                                                 "(libm's expf does not vectorise), np.exp else.")


@njit(cache=True, inline="always", error_model="numpy")
def activation(x, act):
    """One unit's activation."""
    if act == TANH:
        return fast_tanh(x)
    if act == SIGMOID:
        return 1.0 / (1.0 + np.exp(-x))
    return x if x > 0.0 else x * 0.0


def cast_like(value, arr):
    """value in arr's dtype, so float32 loops stay float32 (a float64 scalar would widen them); jitted code only."""
    raise TypeError("kernels.cast_like is only callable from jitted code")


@overload(cast_like, inline="always")
def _cast_like_overload(value, arr):
    to = np.float32 if arr.dtype == types.float32 else np.float64  # chosen when compiling: no array, no allocation

    def impl(value, arr):
        return to(value)
    return impl


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
            r = ids[b, p]
            rf = feats[b, p]
            o = p * w
            for j in range(d):
                X[b, o + j] = E[r, j]
            for j in range(df):
                X[b, o + d + j] = F[rf, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def activate(Z, act):
    """Apply the activation in place. Z: (B, H)."""
    flat = Z.reshape(-1)
    if act == TANH:
        for i in range(flat.shape[0]):
            flat[i] = fast_tanh(flat[i])
    elif act == SIGMOID:
        for i in range(flat.shape[0]):
            flat[i] = 1.0 / (1.0 + np.exp(-flat[i]))
    else:
        for i in range(flat.shape[0]):
            if flat[i] < 0.0:
                flat[i] = 0.0


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


@njit(cache=True)
def forward(ids, feats, E, F, theta, sizes, has_direct, act, drop_in, drop_hidden, seed, step, acts, keep, Z):
    """Forward pass of a batch of windows, keeping what backward needs.

    ids, feats: (B, P) int32; acts, keep: flat (B*sum(sizes[:-1]),) buffers; Z: (B, n_out) logits out.
    drop_in / drop_hidden are dropout rates (0 at inference).
    """
    forward_core(ids, feats, E, F, theta, sizes, has_direct, act, drop_in, drop_hidden, seed, step, acts, keep, Z,
                 True)


@njit(cache=True)
def forward_core(ids, feats, E, F, theta, sizes, has_direct, act, drop_in, drop_hidden, seed, step, acts, keep, Z,
                 fill_keep):
    """`forward`; without fill_keep, `keep` is only written where a dropout rate is > 0 (fused paths)."""
    B = ids.shape[0]
    n_in = sizes[0]
    X = acts[0 : B * n_in].reshape(B, n_in)
    gather(ids, feats, E, F, X)
    if drop_in > 0.0 or fill_keep:
        K = keep[0 : B * n_in]
        fill_dropout(K, drop_in, seed, step, 0)
        if drop_in > 0.0:
            Xf = acts[0 : B * n_in]
            for i in range(B * n_in):
                Xf[i] *= K[i]
    forward_layers(theta, sizes, has_direct, act, drop_hidden, seed, step, acts, keep, Z, B, 0, fill_keep)


@njit(cache=True)
def forward_layers(theta, sizes, has_direct, act, drop_hidden, seed, step, acts, keep, Z, B, l0, fill_keep):
    """Layers l0, l0+1, ... of the forward pass, from the input of layer l0 already in acts."""
    n_layers = sizes.shape[0] - 1
    for l in range(l0, n_layers):
        n, m = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        W = theta[wo : wo + n * m].reshape(n, m)
        bias = theta[wo + n * m : wo + n * m + m]
        ao = acts_offset(sizes, l, B)
        A = acts[ao : ao + B * n].reshape(B, n)
        last = l == n_layers - 1
        if last and has_direct:
            # W_last, b_last and D sit back to back in theta: Z = [A, 1, X] @ [W_last; b_last; D] in one product
            U = top_inputs(acts, sizes, B)
            gemm(False, False, 1.0, U, top_block(theta, sizes), 0.0, Z)
            break
        out = Z if last else acts[ao + B * n : ao + B * n + B * m].reshape(B, m)
        gemm(False, False, 1.0, A, W, 0.0, out)
        bias_activate(out, bias, act, not last)
        if not last and (drop_hidden > 0.0 or fill_keep):
            K = keep[ao + B * n : ao + B * n + B * m]
            fill_dropout(K, drop_hidden, seed, step, ao + B * n)
            if drop_hidden > 0.0:
                o = out.reshape(-1)
                for i in range(B * m):
                    o[i] *= K[i]


@njit(cache=True)
def top_block(theta, sizes):
    """[W_last; b_last; D] as one (n_last + 1 + n_in, n_out) matrix: they are contiguous in theta."""
    n_layers = sizes.shape[0] - 1
    n_last, n_out, n_in = sizes[n_layers - 1], sizes[-1], sizes[0]
    wo = weight_offset(sizes, n_layers - 1)
    width = n_last + 1 + n_in
    return theta[wo : wo + width * n_out].reshape(width, n_out)


@njit(cache=True)
def top_scratch(buf, sizes, B):
    """A (B, n_last + 1 + n_in) array in the region after the layers of `buf` (acts or dacts), which
    WindowMLP.buffers adds for models with direct connections; a new array if `buf` has no such region."""
    n_layers = sizes.shape[0] - 1
    width = sizes[n_layers - 1] + 1 + sizes[0]
    o = acts_offset(sizes, n_layers, B)
    if buf.shape[0] >= o + B * width:
        return buf[o : o + B * width].reshape(B, width)
    return np.empty((B, width), buf.dtype)


@njit(cache=True)
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


# ---------------------------------------------------------------- losses


@njit(cache=True, fastmath=FAST, error_model="numpy")
def row_max(z):
    """max of a 1-d array. Eight running maxima in scalars, which LLVM packs into one vector register: it
    will not vectorise a single running max (5x slower over a 16k-word row), and an array of lanes would be
    allocated on every call. NaN entries are skipped, which is safe where the caller goes on to exponentiate
    every entry: a NaN then still reaches the loss and the divergence check."""
    n = z.shape[0]
    full = n - n % 8
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = z[0]
    for i in range(0, full, 8):
        v = z[i]
        m0 = v if v > m0 else m0
        v = z[i + 1]
        m1 = v if v > m1 else m1
        v = z[i + 2]
        m2 = v if v > m2 else m2
        v = z[i + 3]
        m3 = v if v > m3 else m3
        v = z[i + 4]
        m4 = v if v > m4 else m4
        v = z[i + 5]
        m5 = v if v > m5 else m5
        v = z[i + 6]
        m6 = v if v > m6 else m6
        v = z[i + 7]
        m7 = v if v > m7 else m7
    mx = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for c in range(full, n):
        if z[c] > mx:
            mx = z[c]
    return mx


@njit(cache=True, fastmath=FAST, error_model="numpy")
def softmax_xent(Z, targets, scale, dZ):
    """Summed cross-entropy of softmax(Z) against int targets; dZ = scale * (softmax(Z) - onehot).

    Z, dZ: (B, C); targets: (B,) int. Log-sum-exp with the max subtracted; every loop vectorises (with a
    language model's C = |V| the exponentials cost as much as the matrix products otherwise).
    """
    B, C = Z.shape
    loss = 0.0
    for b in range(B):
        mx = row_max(Z[b])
        # summed in Z's precision: a float32 sum vectorises twice as wide (LM batch 64: 1.44 -> 0.85 ms), and
        # its rounding, ~1e-6 relative here, is below what float32 probabilities carry anyway
        s = cast_like(0.0, Z)
        for c in range(C):
            e = fast_exp(Z[b, c] - mx)
            dZ[b, c] = e
            s += e
        loss += np.log(np.float64(s)) + mx - Z[b, targets[b]]
        inv = cast_like(scale / s, dZ)
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


@njit(cache=True, fastmath=FAST, error_model="numpy")
def log_softmax_rows(Z, out):
    """out = log softmax(Z) row by row. Z, out: (B, C)."""
    B, C = Z.shape
    for b in range(B):
        mx = row_max(Z[b])
        s = 0.0
        for c in range(C):
            s += fast_exp(Z[b, c] - mx)
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
        gemm(True, False, 1.0, A, dcur, 1.0, gW)
        gb = grad[wo + n * m : wo + n * m + m]
        for b in range(B):
            for j in range(m):
                gb[j] += dcur[b, j]
        dA = dacts[ao : ao + B * n].reshape(B, n)
        gemm(False, True, 1.0, dcur, W, 0.0, dA)
        if l == 0 and has_direct:
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


@njit(cache=True, fastmath=FAST, error_model="numpy")
def adam_dense(theta, grad, m, v, lr, beta1, beta2, eps, t):
    """One Adam step (Kingma & Ba 2015) with bias correction at step t (1-based).

    The scalars are cast to the arrays' dtype so a float32 model's loop stays float32 and vectorises.
    """
    c1 = 1.0 - beta1**t
    c2 = 1.0 - beta2**t
    step = cast_like(lr * np.sqrt(c2) / c1, theta)
    b1, b2 = cast_like(beta1, theta), cast_like(beta2, theta)
    a1, a2 = cast_like(1.0 - beta1, theta), cast_like(1.0 - beta2, theta)
    e = cast_like(eps, theta)
    for i in range(theta.shape[0]):
        g = grad[i]
        mi = b1 * m[i] + a1 * g
        vi = b2 * v[i] + a2 * g * g
        m[i] = mi
        v[i] = vi
        theta[i] -= step * mi / (np.sqrt(vi) + e)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def adam_rows(table, rows, G, n_rows, m, v, lr, beta1, beta2, eps, t):
    """Lazy (sparse) Adam: only the rows used in this batch have their moments decayed and updated."""
    c1 = 1.0 - beta1**t
    c2 = 1.0 - beta2**t
    step = cast_like(lr * np.sqrt(c2) / c1, table)
    b1, b2 = cast_like(beta1, table), cast_like(beta2, table)
    a1, a2 = cast_like(1.0 - beta1, table), cast_like(1.0 - beta2, table)
    e = cast_like(eps, table)
    for k in range(n_rows):
        r = rows[k]
        for j in range(table.shape[1]):
            g = G[k, j]
            mi = b1 * m[r, j] + a1 * g
            vi = b2 * v[r, j] + a2 * g * g
            m[r, j] = mi
            v[r, j] = vi
            table[r, j] -= step * mi / (np.sqrt(vi) + e)


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


@njit(cache=True, fastmath=FAST, error_model="numpy")
def hidden_grad(dA, A, keep, act, drop):
    """dA *= act'(pre-activation), from the activation's output A; with dropout, A and dA carry the keep scale.

    dA, A, keep: flat (n,) views of one layer's buffers; keep is read only when drop > 0.
    """
    n = dA.shape[0]
    if drop > 0.0:
        for i in range(n):
            k = keep[i]
            if k == 0.0:
                dA[i] = 0.0
                continue
            a = A[i] / k
            if act == TANH:
                dA[i] *= k * (1.0 - a * a)
            elif act == SIGMOID:
                dA[i] *= k * a * (1.0 - a)
            else:
                dA[i] = dA[i] * k if a > 0.0 else 0.0
    elif act == TANH:
        one = cast_like(1.0, dA)
        for i in range(n):
            dA[i] *= one - A[i] * A[i]
    elif act == SIGMOID:
        one = cast_like(1.0, dA)
        for i in range(n):
            dA[i] *= A[i] * (one - A[i])
    else:
        for i in range(n):
            if A[i] <= 0.0:
                dA[i] = 0.0


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sgd_scatter(ids, dX, col0, width, stride, table, lr):
    """SGD straight from dX: table[ids[b, p]] -= lr * position p's slice of dX (a row used twice moves twice).

    Equal to scatter_rows + sgd_rows up to the order of float additions; no slot bookkeeping.
    """
    B, P = ids.shape
    c = cast_like(lr, table)
    for b in range(B):
        for p in range(P):
            r = ids[b, p]
            o = p * stride + col0
            for j in range(width):
                table[r, j] -= c * dX[b, o + j]


ROWS_TIMES_VECTOR_BLOCK = 2048  # a block of out stays in L1 while every row of W passes over it
# From this many weights on (a language model's output layer: 5.6M), threads split out's blocks: one row
# times the matrix streams it from memory once, which one core cannot do at full bandwidth.
ROWS_TIMES_VECTOR_SPLIT = 2_000_000


@njit(cache=True, fastmath=FAST, error_model="numpy")
def rows_times_vector(W, a, out):
    """out += a @ W, four rows per sweep over a block of out. W: (n, m); a: (n,); out: (m,). (No row views:
    in a hot loop each view costs reference counting.) Large W: rows_times_vector_split."""
    n, m = W.shape
    if n * m >= ROWS_TIMES_VECTOR_SPLIT:
        rows_times_vector_split(W, a, out)
        return
    for j0 in range(0, m, ROWS_TIMES_VECTOR_BLOCK):
        _rows_times_block(W, a, out, j0, min(m, j0 + ROWS_TIMES_VECTOR_BLOCK))


# Cached parallel kernels are safe only because winner.core.runtime.init() launches numba's threading layer before
# any kernel is loaded: a cached caller of this kernel does not launch it (numba #8578), see runtime.py.
@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def rows_times_vector_split(W, a, out):
    """rows_times_vector with threads taking out's blocks: each output sums the same terms in the same order,
    so the result does not depend on the thread count."""
    m = W.shape[1]
    n_blocks = (m + ROWS_TIMES_VECTOR_BLOCK - 1) // ROWS_TIMES_VECTOR_BLOCK
    for blk in prange(n_blocks):
        j0 = blk * ROWS_TIMES_VECTOR_BLOCK
        _rows_times_block(W, a, out, j0, min(m, j0 + ROWS_TIMES_VECTOR_BLOCK))


@njit(cache=True, inline="always", fastmath=FAST, error_model="numpy")
def _rows_times_block(W, a, out, j0, j1):
    """out[j0:j1] += a @ W[:, j0:j1]. Row and column indices are unsigned on purpose: numba checks a signed
    computed index (i + 1) for negative wraparound, and that check kept the sweep from vectorising (5x slower
    at 500 x 300)."""
    n = W.shape[0]
    lo, hi = np.uint64(j0), np.uint64(j1)
    i = 0
    while i + 4 <= n:
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        r0, r1, r2, r3 = np.uint64(i), np.uint64(i + 1), np.uint64(i + 2), np.uint64(i + 3)
        for j in range(lo, hi):
            out[j] += a0 * W[r0, j] + a1 * W[r1, j] + a2 * W[r2, j] + a3 * W[r3, j]
        i += 4
    while i < n:
        ai = a[i]
        r0 = np.uint64(i)
        for j in range(lo, hi):
            out[j] += ai * W[r0, j]
        i += 1


@njit(cache=True, fastmath=FAST, error_model="numpy")
def vector_times_matrix(trans_a, trans_b, alpha, A, B, beta, c):
    """c = alpha * op(A)[0] @ op(B) + beta * c for a one-row op(A): gemm's m == 1 case. c: (n,)."""
    if not trans_a and alpha == 1.0:  # the common case: A's row as it is, no scaled copy
        _row_times_matrix(A[0], trans_b, B, beta, c)
        return
    k = A.shape[0] if trans_a else A.shape[1]
    a = np.empty(k, c.dtype)
    al = cast_like(alpha, c)
    for i in range(k):
        a[i] = al * (A[i, 0] if trans_a else A[0, i])
    _row_times_matrix(a, trans_b, B, beta, c)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def _row_times_matrix(a, trans_b, B, beta, c):
    """c = a @ op(B) + beta * c. a: (k,); c: (n,)."""
    n = c.shape[0]
    k = a.shape[0]
    if beta == 0.0:
        c[:] = 0.0
    elif beta != 1.0:
        be = cast_like(beta, c)
        for j in range(n):
            c[j] *= be
    if not trans_b:
        rows_times_vector(B, a, c)
    else:
        for j in range(n):
            s = c[j]
            for i in range(k):
                s += a[i] * B[j, i]
            c[j] = s


@njit(cache=True, fastmath=FAST, error_model="numpy")
def rank1_update_dot(W, a, delta, lr, da, need):
    """One sweep over W (n, m): da[i] += W[i] . delta (with the old W, if need), then W[i] -= lr*a[i]*delta."""
    n, m = W.shape
    for i in range(n):
        c = lr * a[i]
        if need:
            s = da[i]
            for j in range(m):
                s += W[i, j] * delta[j]
                W[i, j] -= c * delta[j]
            da[i] = s
        elif c != 0.0:
            for j in range(m):
                W[i, j] -= c * delta[j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def sgd_example(ids, feats, targets, E, F, theta, sizes, has_direct, act, loss_kind, drop_in, drop_hidden, seed,
                step, lr, lr_embed, update_E, update_F, acts, keep, Z, dZ, dacts):
    """One plain-SGD step on ONE window, without ever forming a gradient; returns its loss.

    Each weight row is read once in the backward pass: the same sweep takes its dot product with the
    layer's delta (for the layer below) and applies the rank-1 update W[i] -= lr * a[i] * delta. Equal to
    forward + backward + sgd_dense + scatter_rows + sgd_rows up to float rounding, with the same dropout
    masks. A non-finite loss returns before any parameter changes. ids, feats: (1, P); targets: (1,).
    """
    n_layers = sizes.shape[0] - 1
    n_in = sizes[0]
    lr_t = cast_like(lr, theta)
    x = acts[0:n_in]
    gather(ids, feats, E, F, x.reshape(1, n_in))
    if drop_in > 0.0:
        fill_dropout(keep[0:n_in], drop_in, seed, step, 0)
        for i in range(n_in):
            x[i] *= keep[i]
    ao = 0
    for l in range(n_layers):
        n, m = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        W = theta[wo : wo + n * m].reshape(n, m)
        a = acts[ao : ao + n]
        last = l == n_layers - 1
        out = Z[0] if last else acts[ao + n : ao + n + m]
        out[:] = theta[wo + n * m : wo + n * m + m]
        rows_times_vector(W, a, out)
        if not last:
            for j in range(m):
                out[j] = activation(out[j], act)
            if drop_hidden > 0.0:
                K = keep[ao + n : ao + n + m]
                fill_dropout(K, drop_hidden, seed, step, ao + n)
                for j in range(m):
                    out[j] *= K[j]
        ao += n
    n_out = sizes[-1]
    do = weight_offset(sizes, n_layers)
    if has_direct:
        rows_times_vector(theta[do : do + n_in * n_out].reshape(n_in, n_out), x, Z[0])
    if loss_kind == LOSS_SOFTMAX:
        loss = softmax_xent(Z[0:1], targets, 1.0, dZ[0:1])
    else:
        loss = sigmoid_xent(Z[0:1], targets, 1.0, dZ[0:1])
    if not np.isfinite(loss):
        return loss
    for l in range(n_layers - 1, -1, -1):
        n, m = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        W = theta[wo : wo + n * m].reshape(n, m)
        bias = theta[wo + n * m : wo + n * m + m]
        ao = acts_offset(sizes, l, 1)
        a = acts[ao : ao + n]
        da = dacts[ao : ao + n]
        delta = dZ[0] if l == n_layers - 1 else dacts[ao + n : ao + n + m]
        need = l > 0 or update_E or update_F
        for i in range(n):
            da[i] = 0.0
        if l == 0 and has_direct:
            rank1_update_dot(theta[do : do + n_in * n_out].reshape(n_in, n_out), a, dZ[0], lr_t, da, need)
        rank1_update_dot(W, a, delta, lr_t, da, need)
        for j in range(m):
            bias[j] -= lr_t * delta[j]
        if l > 0:
            hidden_grad(da, a, keep[ao : ao + n], act, drop_hidden)
        elif drop_in > 0.0:
            for i in range(n):
                da[i] *= keep[i]
    d = E.shape[1]
    stride = d + F.shape[1]
    dX = dacts[0:n_in].reshape(1, n_in)
    if update_E:
        sgd_scatter(ids, dX, 0, d, stride, E, lr_embed)
    if update_F:
        sgd_scatter(feats, dX, d, F.shape[1], stride, F, lr_embed)
    return loss


@njit(cache=True)
def dense_block_update(opt, A, dcur, Wb, n, m, g, mo, vo, lr, beta1, beta2, eps, t):
    """Update one weight block Wb = (W (n, m) then b (m,)) flat in theta from A (B, n) and dcur (B, m).

    SGD adds -lr * A.T @ dcur straight into W (one BLAS call, no gradient array; g's bias slot, if g has one,
    holds the bias sums); Adam writes the block's gradient into g (same layout) and steps its moments mo, vo.
    """
    B = A.shape[0]
    W = Wb[0 : n * m].reshape(n, m)
    if opt == OPT_SGD:
        gemm(True, False, -lr, A, dcur, 1.0, W)
        bias = Wb[n * m : n * m + m]
        lr_t = cast_like(lr, Wb)
        if g.shape[0] >= n * m + m:  # g's bias slot as scratch: summing row by row reads dcur in order
            gb = g[n * m : n * m + m]
            gb[:] = 0.0
            for b in range(B):
                for j in range(m):
                    gb[j] += dcur[b, j]
            for j in range(m):
                bias[j] -= lr_t * gb[j]
        else:  # the same sums, column by column
            for j in range(m):
                s = dcur[0, j] * 0.0
                for b in range(B):
                    s += dcur[b, j]
                bias[j] -= lr_t * s
    else:
        gemm(True, False, 1.0, A, dcur, 0.0, g[0 : n * m].reshape(n, m))
        gb = g[n * m : n * m + m]
        gb[:] = 0.0
        for b in range(B):
            for j in range(m):
                gb[j] += dcur[b, j]
        adam_dense(Wb, g, mo, vo, lr, beta1, beta2, eps, t)


@njit(cache=True)
def fused_step(ids, feats, targets, E, F, theta, sizes, has_direct, act, loss_kind, drop_in, drop_hidden, seed,
               step, opt, lr, lr_embed, beta1, beta2, eps, t, m, v, mE, vE, mF, vF, update_E, update_F,
               acts, keep, Z, dZ, dacts, grad, slotE, rowsE, GE, slotF, rowsF, GF):
    """One optimiser step on one minibatch, backward and update interleaved; returns the mean loss.

    Layer by layer from the top: dA = dcur @ W.T (with the old W), then W is updated (SGD: by BLAS straight
    into theta; Adam: via this block's gradient). Embedding rows get SGD straight from dX, or lazy Adam
    over the summed rows. Equal to loss_and_grad + apply_update up to float rounding. A non-finite loss
    returns before any parameter changes. t: Adam's 1-based step.
    """
    B = ids.shape[0]
    forward_core(ids, feats, E, F, theta, sizes, has_direct, act, drop_in, drop_hidden, seed, step, acts, keep,
                 Z[:B], False)
    scale = 1.0 / B
    if loss_kind == LOSS_SOFTMAX:
        loss = softmax_xent(Z[:B], targets, scale, dZ[:B])
    else:
        loss = sigmoid_xent(Z[:B], targets, scale, dZ[:B])
    loss *= scale
    if not np.isfinite(loss):
        return loss
    n_layers = sizes.shape[0] - 1
    n_in = sizes[0]
    n_last = sizes[n_layers - 1]
    dcur = dZ[:B]
    dU = dZ[:1, :1]  # with direct connections: dL/d[A_last, 1, X] from the combined top product
    for l in range(n_layers - 1, -1, -1):
        n, mm = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        W = theta[wo : wo + n * mm].reshape(n, mm)
        ao = acts_offset(sizes, l, B)
        A = acts[ao : ao + B * n].reshape(B, n)
        dA = dacts[ao : ao + B * n].reshape(B, n)
        need = l > 0 or update_E or update_F
        if has_direct and l == n_layers - 1:
            U = top_inputs(acts, sizes, B)
            block = top_block(theta, sizes)
            dU = top_scratch(dacts, sizes, B)
            if need:
                gemm(False, True, 1.0, dcur, block, 0.0, dU)
                for b in range(B):
                    for j in range(n):
                        dA[b, j] = dU[b, j]
            if opt == OPT_SGD:
                gemm(True, False, -lr, U, dcur, 1.0, block)
            else:
                e = wo + block.size
                gemm(True, False, 1.0, U, dcur, 0.0, grad[wo:e].reshape(block.shape))
                adam_dense(theta[wo:e], grad[wo:e], m[wo:e], v[wo:e], lr, beta1, beta2, eps, t)
        else:
            if need:
                gemm(False, True, 1.0, dcur, W, 0.0, dA)
            e = wo + n * mm + mm
            if opt == OPT_SGD:
                dense_block_update(opt, A, dcur, theta[wo:e], n, mm, grad[wo:e], grad[wo:e], grad[wo:e], lr,
                                   beta1, beta2, eps, t)
            else:
                dense_block_update(opt, A, dcur, theta[wo:e], n, mm, grad[wo:e], m[wo:e], v[wo:e], lr, beta1,
                                   beta2, eps, t)
        if l == 0 and has_direct and need:
            for b in range(B):
                for j in range(n_in):
                    dA[b, j] += dU[b, n_last + 1 + j]
        if l > 0:
            hidden_grad(dacts[ao : ao + B * n], acts[ao : ao + B * n], keep[ao : ao + B * n], act, drop_hidden)
        elif drop_in > 0.0 and need:
            dflat = dacts[0 : B * n]
            for i in range(B * n):
                dflat[i] *= keep[i]
        dcur = dA
    d = E.shape[1]
    df = F.shape[1]
    dX = dacts[0 : B * n_in].reshape(B, n_in)
    if opt == OPT_SGD:
        if update_E:
            sgd_scatter(ids, dX, 0, d, d + df, E, lr_embed)
        if update_F:
            sgd_scatter(feats, dX, d, df, d + df, F, lr_embed)
    else:
        if update_E:
            nE = scatter_rows(ids, dX, 0, d, d + df, slotE, rowsE, GE, 0)
            adam_rows(E, rowsE, GE, nE, mE, vE, lr_embed, beta1, beta2, eps, t)
            clear_slots(slotE, rowsE, nE)
        if update_F:
            nF = scatter_rows(feats, dX, d, df, d + df, slotF, rowsF, GF, 0)
            adam_rows(F, rowsF, GF, nF, mF, vF, lr_embed, beta1, beta2, eps, t)
            clear_slots(slotF, rowsF, nF)
    return loss


@njit(cache=True)
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
            if slot[r] < 0:
                slot[r] = n
                words[n] = r
                n += 1
            pmap[b, p] = slot[r]
        for i in range(offsets[p], n):
            slot[words[i]] = -1
    offsets[P] = n
    return n


@njit(cache=True, fastmath=FAST, error_model="numpy")
def pair_hidden(Tp, pmap, bias, act, drop, seed, step, base, keep, H):
    """H[b] = act(bias + sum over positions p of Tp[pmap[b, p]]), then dropout: the first hidden layer of
    sgd_step_pairs, a window at a time while its row is in cache. keep: (B, m), written only when drop > 0
    (fill_dropout's masks, from index base)."""
    B, P = pmap.shape
    m = H.shape[1]
    scale = cast_like(1.0 / (1.0 - drop), H) if drop > 0.0 else cast_like(1.0, H)
    for b in range(B):
        for j in range(m):
            H[b, j] = bias[j]
        for p in range(P):
            k = pmap[b, p]
            for j in range(m):
                H[b, j] += Tp[k, j]
        if act == TANH:  # its own loop, so that it vectorises
            for j in range(m):
                H[b, j] = fast_tanh(H[b, j])
        else:
            for j in range(m):
                H[b, j] = activation(H[b, j], act)
        if drop > 0.0:
            for j in range(m):
                keep[b, j] = 0.0 if hash_uniform(seed, step, base + b * m + j) < drop else scale
                H[b, j] *= keep[b, j]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def pair_sums(dH, pmap, n, S, bias_sum):
    """S[k] = the sum of dH's rows over the windows using pair k, and bias_sum = the sum of every row, a window
    at a time (in window order, as a column sum would add them). dH: (B, m); S: (>= n, m)."""
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


@njit(cache=True)
def sgd_step_pairs(ids, targets, E, theta, sizes, act, loss_kind, drop_hidden, seed, step, lr, lr_embed, update_E,
                   acts, keep, Z, dZ, dacts, slot, pmap, words, offsets, Xp, Tp, Sp, Gp):
    """fused_step for plain SGD without input dropout, word features or direct connections, by distinct pairs.

    The first layer is linear in the embeddings, so a (position, word) pair used by k windows of the batch
    needs its products once, not k times: T = E[w] @ W0_p per distinct pair (forward), the windows' dH
    summed per pair (S), then S @ W0_p.T for the word's gradient and Xp.T @ S for W0_p's update. Running
    text repeats words (at batch 512, ~30% of pairs are repeats), so all three big products shrink.
    Equal to fused_step up to float rounding, with the same dropout masks. Scratch: pmap (B, P) int32,
    words (B*P,) int32, offsets (P+1,) int64, Xp (B*P, d), Tp (B*P, H0), Sp (B*P + 1, H0) (its last row
    the bias gradient), Gp (B*P, d).
    """
    B, P = ids.shape
    n_layers = sizes.shape[0] - 1
    n_in, H0 = sizes[0], sizes[1]
    d = E.shape[1]
    n = number_pairs(ids, slot, pmap, words, offsets)
    take_rows(E, words, 0, n, Xp)
    W0 = theta[0 : n_in * H0].reshape(n_in, H0)
    b0 = theta[n_in * H0 : n_in * H0 + H0]
    for p in range(P):
        a, e = offsets[p], offsets[p + 1]
        gemm(False, False, 1.0, Xp[a:e], W0[p * d : (p + 1) * d], 0.0, Tp[a:e])
    h0 = B * n_in
    H = acts[h0 : h0 + B * H0].reshape(B, H0)
    K1 = keep[h0 : h0 + B * H0].reshape(B, H0)
    pair_hidden(Tp, pmap, b0, act, drop_hidden, seed, step, h0, K1, H)
    forward_layers(theta, sizes, False, act, drop_hidden, seed, step, acts, keep, Z[:B], B, 1, False)
    scale = 1.0 / B
    if loss_kind == LOSS_SOFTMAX:
        loss = softmax_xent(Z[:B], targets, scale, dZ[:B])
    else:
        loss = sigmoid_xent(Z[:B], targets, scale, dZ[:B])
    loss *= scale
    if not np.isfinite(loss):
        return loss
    dcur = dZ[:B]
    for l in range(n_layers - 1, 0, -1):
        nl, ml = sizes[l], sizes[l + 1]
        wo = weight_offset(sizes, l)
        W = theta[wo : wo + nl * ml].reshape(nl, ml)
        ao = acts_offset(sizes, l, B)
        A = acts[ao : ao + B * nl].reshape(B, nl)
        dA = dacts[ao : ao + B * nl].reshape(B, nl)
        gemm(False, True, 1.0, dcur, W, 0.0, dA)
        e = wo + nl * ml + ml
        dense_block_update(OPT_SGD, A, dcur, theta[wo:e], nl, ml, theta[0:1], theta[0:1], theta[0:1], lr, 0.0, 0.0,
                           0.0, 0)
        hidden_grad(dacts[ao : ao + B * nl], acts[ao : ao + B * nl], keep[ao : ao + B * nl], act, drop_hidden)
        dcur = dA
    S = Sp[:n]
    bias_sum = Sp[Sp.shape[0] - 1]
    pair_sums(dcur, pmap, n, S, bias_sum)
    for p in range(P):
        a, e = offsets[p], offsets[p + 1]
        W0p = W0[p * d : (p + 1) * d]
        if update_E:
            gemm(False, True, 1.0, S[a:e], W0p, 0.0, Gp[a:e])
        gemm(True, False, -lr, Xp[a:e], S[a:e], 1.0, W0p)
    lr_t = cast_like(lr, theta)
    for j in range(H0):
        b0[j] -= lr_t * bias_sum[j]
    if update_E:
        c = cast_like(lr_embed, E)
        for i in range(n):
            r = words[i]
            for j in range(d):
                E[r, j] -= c * Gp[i, j]
    return loss


@njit(cache=True)
def train_batches(ids, feats, targets, order, start, stop, batch, ids_b, feats_b, targets_b,
                  E, F, theta, sizes, has_direct, act, loss_kind, drop_in, drop_hidden, seed, step0,
                  weight_mask, l2, l1, opt, lr, lr_embed, beta1, beta2, eps, m, v, mE, vE, mF, vF,
                  update_E, update_F, acts, keep, Z, dZ, dacts, grad,
                  slotE, rowsE, GE, slotF, rowsF, GF, pmap, words, offsets, Xp, Tp, Sp, Gp):
    """Train on windows order[start:stop] in minibatches of `batch`; returns the summed batch losses.

    Steps are numbered from step0 (dropout masks and Adam's bias correction use step+1).
    A non-finite loss stops the loop early and is returned so the caller can react.
    Without a weight penalty the fused paths run (`sgd_example` for plain SGD on one window;
    `sgd_step_pairs` for plain SGD on batches of >= PAIRS_MIN_BATCH when it applies and its scratch
    (pmap ... Gp, see there) is big enough; else `fused_step`); with one, loss_and_grad + apply_update.
    """
    total = 0.0
    step = step0
    fused = l2 == 0.0 and l1 == 0.0 and loss_kind != LOSS_NONE
    pairs = (fused and opt == OPT_SGD and drop_in == 0.0 and F.shape[1] == 0 and not has_direct
             and sizes.shape[0] >= 3)
    for s in range(start, stop, batch):
        e = min(s + batch, stop)
        B = e - s
        take_rows(ids, order, s, e, ids_b)
        take_rows(feats, order, s, e, feats_b)
        for i in range(B):
            targets_b[i] = targets[order[s + i]]
        if pairs and B >= PAIRS_MIN_BATCH and pmap.shape[0] >= B:
            loss = sgd_step_pairs(ids_b[:B], targets_b[:B], E, theta, sizes, act, loss_kind, drop_hidden, seed, step,
                                  lr, lr_embed, update_E, acts, keep, Z, dZ, dacts, slotE, pmap, words, offsets, Xp,
                                  Tp, Sp, Gp)
            step += 1
            if not np.isfinite(loss):
                return loss
        elif fused and B == 1 and opt == OPT_SGD:
            loss = sgd_example(ids_b[:1], feats_b[:1], targets_b[:1], E, F, theta, sizes, has_direct, act, loss_kind,
                               drop_in, drop_hidden, seed, step, lr, lr_embed, update_E, update_F, acts, keep, Z, dZ,
                               dacts)
            step += 1
            if not np.isfinite(loss):
                return loss
        elif fused:
            loss = fused_step(ids_b[:B], feats_b[:B], targets_b[:B], E, F, theta, sizes, has_direct, act, loss_kind,
                              drop_in, drop_hidden, seed, step, opt, lr, lr_embed, beta1, beta2, eps, step + 1,
                              m, v, mE, vE, mF, vF, update_E, update_F, acts, keep, Z, dZ, dacts, grad,
                              slotE, rowsE, GE, slotF, rowsF, GF)
            step += 1
            if not np.isfinite(loss):
                return loss
        else:
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
        forward_core(ids[s:e], feats[s:e], E, F, theta, sizes, has_direct, act, 0.0, 0.0, 0, 0, acts, keep, Z[:B],
                     False)
        out[s:e] = Z[:B]


# ---------------------------------------------------------------- inference by first-layer lookup


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
            r = ids[b, p]
            if slot[r] < 0:
                slot[r] = U
                uniq[U] = r
                U += 1
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
    w = d + df. Eu: (>=U, d) scratch. The first layer is linear in the embeddings (Collobert et al. 2011).
    A word's P rows are contiguous: consecutive windows of a text reuse them while they are in cache.
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


# Parallel and cached: safe to load in any process once winner.core.runtime.init() has run (see runtime.py).
@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def lookup_logits(local, feats, T, C, theta, WT, sizes, act, log_proba, out):
    """Logits (or log-probabilities) of windows whose first layer is a sum of table rows.

    local: (N, P) int32 indices into T's first axis; feats: (N, P) int32; T: (U, P, H0); C: (P, Vf, H0);
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
            elif act == TANH:  # its own loop, so that it vectorises
                for j in range(H0):
                    h[j] = fast_tanh(h[j])
            else:
                for j in range(H0):
                    h[j] = activation(h[j], act)
            for l in range(1, n_layers):
                n, m = sizes[l], sizes[l + 1]
                wo = weight_offset(sizes, l)
                last = l == n_layers - 1
                # 2-d views, not flat offsets: numba checks a computed index for wraparound, which keeps
                # these dot products from vectorising (1.7x slower tagging)
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
                n_out = out.shape[1]
                mx = row_max(out[t])
                s = 0.0
                for k in range(n_out):
                    s += fast_exp(out[t, k] - mx)
                lse = mx + np.log(s)
                for k in range(n_out):
                    out[t, k] -= lse


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
