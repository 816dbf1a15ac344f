"""Scalar math of the kernels: activations and their derivatives, float32 exp and tanh that vectorise, the
stateless dropout hash, and cast_like. The bottom of the core: imports no other winner module.

Dropout masks come from a counter-based hash of (seed, step, index), so they are reproducible without any
random state inside numba.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

TANH, SIGMOID, RELU = 0, 1, 2

# Fast paths never assume finite values: the divergence check (np.isfinite of the loss) must survive. Nor do
# they reassociate sums: numba links a copy of every callee into each caller's library and optimises it again
# there, and a call binds to whichever copy the process loaded first (the callee's own when this process
# compiled it, the caller's when the caller came from numba's cache). With "reassoc" those copies sum in
# different orders, so the same seed gave other bits in a process that compiled the kernels than in one that
# loaded them. Long sums that must vectorise use fixed_sum's or fixed_row_dot's lanes instead.
FAST = {"nsz", "arcp", "contract", "afn"}
# Only for kernels no other kernel calls (one compiled copy of their code exists): they may reassociate.
FAST_ENTRY = FAST | {"reassoc"}
# Every kernel states its fastmath and error_model, and every overload that is not inlined its jit_options:
# numba gives a callee that leaves one unset the flags of whichever caller compiled it first in the process,
# and caches it under its signature alone. A shared callee then took the first caller's flags (the dense weight
# update took one set when the plain step compiled it first, another when the character-window step did), so
# the same seed gave other bits over a cache another command had filled. tests/test_layout.py checks that no
# kernel leaves them to numba.
KERNEL_FLAGS = {"fastmath": FAST, "error_model": "numpy"}
# Running sums of fixed_sum: a few vector registers wide, so the loop vectorises lane-wise.
SUM_LANES = 32


@njit(cache=True, inline="always", error_model="numpy")
def fold_lanes(lanes):
    """lanes[0] + ... + lanes[-1] by halves (a fixed order); overwrites lanes. len(lanes): a power of two."""
    h = lanes.shape[0] // 2
    while h >= 1:
        for i in range(h):
            lanes[i] += lanes[i + h]
        h //= 2
    return lanes[0]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def fixed_sum(z, lanes):
    """Sum of the 1-d z in an order this source fixes: SUM_LANES running sums (each an element-wise add, which
    vectorises without reassociation), folded by halves, then the tail in order. lanes: (SUM_LANES,) scratch.
    Indices are unsigned and no views are taken, for the reasons given at blas._rows_times_block."""
    n, L = z.shape[0], np.uint64(lanes.shape[0])
    lanes[:] = 0.0
    full = n - n % lanes.shape[0]
    for j0 in range(0, full, lanes.shape[0]):
        base = np.uint64(j0)
        for i in range(np.uint64(0), L):
            lanes[i] += z[base + i]
    s = fold_lanes(lanes)
    for j in range(full, n):
        s += z[j]
    return s


@njit(cache=True, fastmath=FAST, error_model="numpy")
def fixed_row_dot(X, i, y, n):
    """X[i, :n] . y[:n] in an order this source fixes: eight running sums in scalars (packed into one vector
    register without reassociation, and nothing allocated), added pairwise, then the tail in order."""
    r = np.uint64(i)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = cast_like(0.0, X)
    for j0 in range(0, n - n % 8, 8):
        j = np.uint64(j0)
        s0, s1, s2, s3 = s0 + X[r, j] * y[j], s1 + X[r, j + 1] * y[j + 1], s2 + X[r, j + 2] * y[j + 2], \
            s3 + X[r, j + 3] * y[j + 3]
        s4, s5, s6, s7 = s4 + X[r, j + 4] * y[j + 4], s5 + X[r, j + 5] * y[j + 5], s6 + X[r, j + 6] * y[j + 6], \
            s7 + X[r, j + 7] * y[j + 7]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for j in range(n - n % 8, n):
        s += X[i, j] * y[j]
    return s


@intrinsic
def _fma32(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma): no fastmath rewrite can split or regroup it, and it vectorises."""
    if not (a == b == c == types.float32):
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fma = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
        return builder.call(fma, args)
    return types.float32(types.float32, types.float32, types.float32), codegen


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float whose IEEE bit pattern is `bits`: a float32 from an int32, a float64 from an int64 (a register
    bitcast: vectorises)."""
    if bits == types.int32:
        result, llvm_type = types.float32, ir.FloatType()
    elif bits == types.int64:
        result, llvm_type = types.float64, ir.DoubleType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_type)
    return result(bits), codegen


_F32 = np.float32
_EXPM1_TAYLOR = tuple(_F32(1.0 / np.prod(np.arange(1.0, k + 1))) for k in range(2, 8))  # 1/2!, ..., 1/7!


@njit(cache=True, inline="always", error_model="numpy")
def _tanh_expm1(x):
    """tanh(x) = m / (m + 2), m = expm1(2x), in float32 arithmetic: under 2.5 float32 ulp from tanh, vectorises.

    2x = n ln2 + r (|r| <= ln2/2, ln2 split in two), expm1(r) = r + r^2 (1/2! + ... + r^5/7!), m = 2^n expm1(r) +
    (2^n - 1), 2^n put straight into the exponent bits. Every multiply-add is one fused operation (_fma32), so
    the kernels' fastmath flags cannot regroup the range reduction or the r + r^2 q that keeps small x exact.
    NaN propagates; |2x| is capped at 18, where tanh rounds to +-1.
    """
    z = x + x
    if z > _F32(18.0):
        z = _F32(18.0)
    elif z < _F32(-18.0):
        z = _F32(-18.0)
    n = np.floor(_fma32(z, _F32(1.4426950408889634), _F32(0.5)))
    r = _fma32(-n, _F32(-2.12194440e-4), _fma32(-n, _F32(0.693359375), z))
    c2, c3, c4, c5, c6, c7 = _EXPM1_TAYLOR
    q = _fma32(_fma32(_fma32(_fma32(_fma32(c7, r, c6), r, c5), r, c4), r, c3), r, c2)
    scale = _float_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))
    m = _fma32(scale, _fma32(r * r, q, r), scale - _F32(1.0))
    return m / (m + _F32(2.0))


def float32_fast_path(exact, float32_fit, doc: str, fit_in_float64: bool = True):
    """A jit-callable function of x: `float32_fit` (a vectorisable fit: evaluated in float64 and rounded, or in
    float32 itself when not fit_in_float64) when x is float32, the math library's `exact` otherwise, so float64
    gradient checks keep exact values."""
    def fn(x):
        return exact(x)
    fn.__doc__ = doc

    @overload(fn, jit_options=KERNEL_FLAGS)
    def _overload(x):
        if x == types.float32:
            if not fit_in_float64:
                return lambda x: float32_fit(x)

            def impl32(x):
                return np.float32(float32_fit(np.float64(x)))
            return impl32

        def impl(x):
            return exact(x)
        return impl
    return fn


fast_tanh = float32_fast_path(np.tanh, _tanh_expm1, "tanh in the precision of x: expm1 in float32 arithmetic for "
                                                    "float32 (libm's tanhf does not vectorise), np.tanh else.",
                              fit_in_float64=False)


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
    return p * _float_from_bits((np.int64(n) + 1023) << 52)


fast_exp = float32_fast_path(np.exp, _exp_poly, "exp in the precision of x: the polynomial for float32 "
                                                 "(libm's expf does not vectorise), np.exp else.")


def cast_like(value, arr):
    """value in arr's dtype, so float32 loops stay float32 (a float64 scalar would widen them); jitted code only."""
    raise TypeError("fastmath.cast_like is only callable from jitted code")


@overload(cast_like, inline="always")
def _cast_like_overload(value, arr):
    to = np.float32 if arr.dtype == types.float32 else np.float64  # chosen when compiling: no array, no allocation

    def impl(value, arr):
        return to(value)
    return impl


# ---------------------------------------------------------------- activations and their derivatives
# Inlined, so each kernel computes them under its own fastmath flags.


@njit(cache=True, inline="always", error_model="numpy")
def activation(x, act):
    """One unit's activation."""
    if act == TANH:
        return fast_tanh(x)
    if act == SIGMOID:
        return 1.0 / (1.0 + np.exp(-x))
    return x if x > 0.0 else x * 0.0


@njit(cache=True, inline="always", error_model="numpy")
def activate_row(h, act):
    """h = act(h) in place. h: (m,). Tanh has its own loop, so that it vectorises."""
    if act == TANH:
        for j in range(h.shape[0]):
            h[j] = fast_tanh(h[j])
    else:
        for j in range(h.shape[0]):
            h[j] = activation(h[j], act)


@njit(cache=True, inline="always", error_model="numpy")
def backprop_units(dA, A, keep, act):
    """dA *= keep * act'(z) over a layer's units: dL/d(output) in, dL/dz out. dA, A, keep: flat (n,) views;
    A = keep * act(z) is the units' output, keep their dropout scale (0: dropped).

    The derivative comes from the activation's value: tanh' = 1 - t^2, sigmoid' = s (1 - s), relu' = [r > 0].
    A whole loop, not a function of one unit: inlined per element, the array arguments would cost reference
    counting in the loop, and under reassociating fastmath the shape of the loop decides the rounding.
    """
    for i in range(dA.shape[0]):
        k = keep[i]
        if k == 0.0:
            dA[i] = 0.0
            continue
        a = A[i] / k  # the activation before dropout
        if act == TANH:
            dA[i] *= k * (1.0 - a * a)
        elif act == SIGMOID:
            dA[i] *= k * a * (1.0 - a)
        else:
            dA[i] = dA[i] * k if a > 0.0 else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def backprop_kept_units(dA, A, act):
    """backprop_units for units without dropout (keep = 1), in dA's precision so that float32 loops stay
    float32, with a loop per activation so that each vectorises."""
    n = dA.shape[0]
    one = cast_like(1.0, dA)
    if act == TANH:
        for i in range(n):
            dA[i] *= one - A[i] * A[i]
    elif act == SIGMOID:
        for i in range(n):
            dA[i] *= A[i] * (one - A[i])
    else:
        for i in range(n):
            if A[i] <= 0.0:
                dA[i] = 0.0


# ---------------------------------------------------------------- dropout


@njit(cache=True, fastmath=FAST, error_model="numpy")
def hash_uniform(seed, step, index):
    """A uniform number in [0, 1) from (seed, step, index): splitmix64 finaliser, no state."""
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    z ^= np.uint64(step) * np.uint64(0xBF58476D1CE4E5B9)
    z ^= np.uint64(index) * np.uint64(0x94D049BB133111EB)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def fill_dropout(keep, p, seed, step, base):
    """keep[i] = 0 with probability p, else 1/(1-p) (inverted dropout); all ones when p == 0."""
    if p <= 0.0:
        keep[:] = 1.0
        return
    scale = 1.0 / (1.0 - p)
    for i in range(keep.shape[0]):
        keep[i] = 0.0 if hash_uniform(seed, step, base + i) < p else scale
