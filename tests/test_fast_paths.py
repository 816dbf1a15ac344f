"""Every fast path of the core equals the straightforward path to float tolerance.

The references here are independent of the fused kernels: dense gradients from `loss_and_grad` (checked by
finite differences in test_core.py) applied with numpy, and the batch-by-batch GEMM forward pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from winner.core import blas, fastmath, layers, lookup, steps
from winner.core import mlp as mlp_module
from winner.core.cblas import CBLAS_NO_TRANS, CBLAS_ROW_MAJOR, CBLAS_TRANS
from winner.core.fastmath import SUM_LANES
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer
from winner.core.runtime import set_threads


@pytest.fixture(autouse=True)
def threads_kept():
    """Tests that compare thread counts end on set_threads(None); the next test gets the count it began with
    (one under pytest-xdist, see conftest)."""
    import numba

    before = numba.get_num_threads()
    yield
    set_threads(before)


def make(config_kw: dict, n: int = 24, seed: int = 0):
    cfg = MLPConfig(**{"n_positions": 5, "vocab_size": 30, "embed_dim": 4, "n_features": 6, "feature_dim": 3,
                       "n_out": 5, "hidden": (8,), "dtype": "float64", **config_kw})
    model = WindowMLP(cfg, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ids = rng.integers(0, cfg.vocab_size - 3, (n, cfg.n_positions)).astype(np.int32)
    ids[0, -1] = ids[0, 0]  # a word used twice in one window
    feats = rng.integers(0, cfg.n_features, (n, cfg.n_positions)).astype(np.int32)
    targets = rng.integers(0, 2 if cfg.loss == "sigmoid" else cfg.n_out, n)
    return model, ids, feats, targets


def reference_training(model: WindowMLP, opt: Optimizer, ids, feats, targets, order, batch: int, seed: int,
                       step0: int = 0) -> None:
    """The straightforward path: dense gradients of each minibatch, then the update written out in numpy."""
    c = model.config
    train = c.dropout_input > 0 or c.dropout_hidden > 0
    state: dict[str, np.ndarray] = {}
    for i, s in enumerate(range(0, len(order), batch)):
        rows = order[s : s + batch]
        step = step0 + i
        _, grads = model.loss_and_grad(ids[rows], feats[rows], targets[rows], train=train, seed=seed, step=step)
        t = step + 1
        for name, p in model.params.items():
            g = grads[name]
            lr = opt.lr * (opt.embed_lr_scale if name in "EF" else 1.0)
            if opt.name == "sgd":
                p -= lr * g
                continue
            m = state.setdefault("m" + name, np.zeros_like(p))
            v = state.setdefault("v" + name, np.zeros_like(p))
            used = slice(None)
            if name in "EF":  # lazy Adam: only the rows this batch uses
                used = np.unique((ids if name == "E" else feats)[rows])
            m[used] = opt.beta1 * m[used] + (1 - opt.beta1) * g[used]
            v[used] = opt.beta2 * v[used] + (1 - opt.beta2) * g[used] ** 2
            step_size = lr * np.sqrt(1 - opt.beta2**t) / (1 - opt.beta1**t)
            p[used] -= step_size * m[used] / (np.sqrt(v[used]) + opt.eps)


CONFIGS = [
    {},
    {"activation": "relu", "hidden": (7, 6)},
    {"activation": "sigmoid", "dropout_input": 0.3, "dropout_hidden": 0.2},
    {"direct": True, "feature_dim": 0, "n_features": 1},
    {"direct": True, "hidden": (6, 5), "dropout_input": 0.2},
    {"direct": True, "hidden": ()},
    {"hidden": ()},
    {"loss": "sigmoid", "n_out": 1},
]


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "tagger")
def test_fused_training_equals_straightforward_updates(kw, batch, opt_name):
    """train_batches (one-window SGD sweep / fused minibatch step) == gradients + numpy updates, float64."""
    fast, ids, feats, targets = make(kw)
    ref, _, _, _ = make(kw)
    lr = 0.05 if opt_name == "sgd" else 0.01
    order = np.random.default_rng(3).permutation(len(targets)).astype(np.int64)
    opt = Optimizer(opt_name, lr=lr, embed_lr_scale=0.5)
    total = opt.train_batches(fast, ids, feats, targets, order, 0, len(order), batch, seed=7)
    reference_training(ref, Optimizer(opt_name, lr=lr, embed_lr_scale=0.5), ids, feats, targets, order, batch, 7)
    assert np.isfinite(total)
    for name in fast.params:
        np.testing.assert_allclose(fast.params[name], ref.params[name], rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kw", [{"feature_dim": 0, "n_features": 1},
                                {"feature_dim": 0, "n_features": 1, "dropout_hidden": 0.25},
                                {"feature_dim": 0, "n_features": 1, "activation": "relu", "hidden": (7, 6),
                                 "dropout_hidden": 0.3},
                                {"feature_dim": 0, "n_features": 1, "loss": "sigmoid", "n_out": 1}])
def test_distinct_pair_sgd_equals_straightforward_updates(kw):
    """Batches of >= PAIRS_MIN_BATCH windows over a small vocabulary: many repeated (position, word) pairs."""
    fast, ids, feats, targets = make(kw, n=2 * steps.PAIRS_MIN_BATCH + 10)
    ref, _, _, _ = make(kw, n=2 * steps.PAIRS_MIN_BATCH + 10)
    order = np.random.default_rng(3).permutation(len(targets)).astype(np.int64)
    opt = Optimizer("sgd", lr=0.05, embed_lr_scale=0.5)
    assert opt._pairs_apply(fast, steps.PAIRS_MIN_BATCH)
    opt.train_batches(fast, ids, feats, targets, order, 0, len(order), steps.PAIRS_MIN_BATCH, seed=7)
    reference_training(ref, Optimizer("sgd", lr=0.05, embed_lr_scale=0.5), ids, feats, targets, order,
                       steps.PAIRS_MIN_BATCH, 7)
    for name in fast.params:
        np.testing.assert_allclose(fast.params[name], ref.params[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert np.all(fast.slot_E == -1)


def test_distinct_pair_step_gives_the_same_bits_on_one_and_two_threads():
    """sgd_step_pairs shares its positions' products, W0's update and the hidden rows over numba's threads: cut
    by the shapes alone, so a tagger-sized float32 model trained on 1 and 2 threads ends with the same bits."""
    cfg = MLPConfig(n_positions=5, vocab_size=3000, embed_dim=100, n_out=9, hidden=(300, 50), dropout_hidden=0.2)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 400, (600, 5)).astype(np.int32)
    feats, targets = np.zeros_like(ids), rng.integers(0, 9, 600)
    order = rng.permutation(600).astype(np.int64)
    outs = []
    try:
        for threads in (1, 2):
            set_threads(threads)
            model = WindowMLP(cfg, seed=0)
            opt = Optimizer("sgd", lr=0.05)
            assert opt._pairs_apply(model, 256)
            opt.train_batches(model, ids, feats, targets, order, 0, 600, 256, seed=3)
            outs.append(model.to_arrays())
    finally:
        set_threads(None)
    for name in outs[0]:
        assert np.array_equal(outs[0][name], outs[1][name]), name


def test_fused_float32_matches_float64_reference():
    """The float32 fast paths (vectorised tanh, reassociated sums) stay within float32 rounding."""
    fast, ids, feats, targets = make({"dtype": "float32"}, n=40)
    ref, _, _, _ = make({}, n=40)
    order = np.arange(40, dtype=np.int64)
    for batch in (1, 8):
        Optimizer("sgd", lr=0.05).train_batches(fast, ids, feats, targets, order, 0, 40, batch, 0)
        reference_training(ref, Optimizer("sgd", lr=0.05), ids, feats, targets, order, batch, 0)
    for name in fast.params:
        np.testing.assert_allclose(fast.params[name], ref.params[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_weight_penalty_still_takes_the_straightforward_path():
    fast, ids, feats, targets = make({})
    before = fast.to_arrays()
    opt = Optimizer("sgd", lr=0.05, l2=0.1)
    _, grads = fast.loss_and_grad(ids[:4], feats[:4], targets[:4], l2=0.1)
    opt.train_batches(fast, ids, feats, targets, np.arange(4, dtype=np.int64), 0, 4, 4, 0)
    for name in fast.params:
        np.testing.assert_allclose(fast.params[name], before[name] - 0.05 * grads[name], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("batch", [1, 4])
def test_non_finite_loss_leaves_parameters_untouched(batch):
    model, ids, feats, targets = make({})
    model.params["b1"][0] = np.inf
    before = model.to_arrays()
    total = Optimizer("sgd", lr=0.1).train_batches(model, ids, feats, targets, np.arange(8, dtype=np.int64), 0, 8,
                                                   batch, 0)
    assert not np.isfinite(total)
    for name, v in model.params.items():
        np.testing.assert_array_equal(v, before[name], err_msg=name)


# window sizes 3, 7, 9 and 11 take both ways lookup_logits adds table rows (five in one pass, fewer one by one); outputs
# of 3, 4 and 5 every remainder of its three-rows-at-a-time layers
@pytest.mark.parametrize("kw", [{}, {"activation": "relu", "hidden": (7, 6)}, {"activation": "sigmoid"},
                                {"feature_dim": 0, "n_features": 1}, {"n_positions": 3, "n_out": 4},
                                {"n_positions": 7}, {"n_positions": 9}, {"n_positions": 11, "n_out": 3}])
def test_lookup_inference_equals_gemm_path(kw, monkeypatch):
    model, ids, feats, _ = make(kw, n=300)
    for name, value in model.params.items():  # biases start at zero: give them values, so a lost one shows
        if name.startswith("b"):
            value[...] = np.random.default_rng(len(name)).normal(0.0, 0.5, value.shape)
    ref = model.predict_log_proba(ids, feats, method="gemm")
    np.testing.assert_allclose(model.predict_log_proba(ids, feats, method="lookup"), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.predict_logits(ids, feats, method="lookup"),
                               model.predict_logits(ids, feats), rtol=1e-12, atol=1e-12)
    # a table too small for all words: several chunks, each with its own table
    monkeypatch.setattr(mlp_module, "LOOKUP_TABLE_BYTES", 12 * 5 * model.config.hidden[0] * 8)
    np.testing.assert_allclose(model.predict_log_proba(ids, feats, method="lookup"), ref, rtol=1e-12, atol=1e-12)
    assert np.all(model.slot_E == -1)


def test_vocabulary_table_is_built_once_and_never_used_stale():
    model, ids, feats, targets = make({}, n=300)
    few = ids[:2]  # 10 lookups < 30 words: not worth a table
    model.predict_logits(few, feats[:2], method="lookup")
    assert model._vocab_table is None
    model.predict_logits(ids, feats, method="lookup")
    table = model._vocab_table
    assert table is not None
    model.predict_logits(few, feats[:2], method="lookup")
    assert model._vocab_table is table  # reused, even for a small call
    for change in ("train", "E", "F", "W1"):
        if change == "train":
            Optimizer("sgd", lr=0.1).train_batches(model, ids, feats, targets, np.arange(40, dtype=np.int64), 0, 40,
                                                   8, 0)
        else:
            model.params[change][...] *= 1.01  # a write into a parameter view, past every method
        np.testing.assert_allclose(model.predict_log_proba(ids, feats, method="lookup"),
                                   model.predict_log_proba(ids, feats, method="gemm"), rtol=1e-12, atol=1e-12)
        assert model._vocab_table is not table
        table = model._vocab_table


def test_lookup_float32_gives_identical_tags():
    model, ids, feats, _ = make({"dtype": "float32", "hidden": (64,)}, n=5000)
    ref = model.predict_log_proba(ids, feats)
    fast = model.predict_log_proba(ids, feats, method="auto")
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)
    assert np.array_equal(fast.argmax(axis=1), ref.argmax(axis=1))


def test_lookup_refuses_models_it_cannot_serve():
    model, ids, feats, _ = make({"direct": True})
    with pytest.raises(ValueError, match="lookup"):
        model.predict_logits(ids, feats, method="lookup")
    np.testing.assert_allclose(model.predict_logits(ids, feats, method="auto"), model.predict_logits(ids, feats))


def test_results_do_not_depend_on_the_thread_count():
    def train_and_tag(threads: int):
        set_threads(threads)
        model, ids, feats, targets = make({"dtype": "float32", "hidden": (64,), "vocab_size": 200}, n=2048)
        Optimizer("sgd", lr=0.05).train_batches(model, ids, feats, targets, np.arange(2048, dtype=np.int64), 0, 2048,
                                                 512, 0)
        return model.to_arrays(), model.predict_log_proba(ids, feats, method="lookup")

    try:
        (p1, t1), (p2, t2) = train_and_tag(1), train_and_tag(2)
    finally:
        set_threads(None)
    for name in p1:
        assert np.array_equal(p1[name], p2[name]), name
    assert np.array_equal(t1, t2)


def test_one_row_times_a_large_matrix_is_the_same_on_any_thread_count():
    """rows_times_vector splits out's blocks over threads from ROWS_TIMES_VECTOR_SPLIT weights on (a language
    model's output layer): the same bits as one thread and as the serial sweep, and numpy's product."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((301, 7_000)).astype(np.float32)  # 2.1M weights: over the split size
    assert W.size >= blas.ROWS_TIMES_VECTOR_SPLIT
    a = rng.standard_normal(301).astype(np.float32)
    start = rng.standard_normal(7_000).astype(np.float32)
    outs = []
    try:
        for threads in (1, 2):
            set_threads(threads)
            out = start.copy()
            blas.rows_times_vector(W, a, out)
            outs.append(out)
    finally:
        set_threads(None)
    assert np.array_equal(outs[0], outs[1])
    serial = start.copy()
    for j0 in range(0, W.shape[1], 1_000):  # below the split size: the serial sweep, block by block
        j1 = j0 + 1_000
        piece = serial[j0:j1].copy()
        blas.rows_times_vector(np.ascontiguousarray(W[:, j0:j1]), a, piece)
        serial[j0:j1] = piece
    np.testing.assert_allclose(outs[0], start + a.astype(np.float64) @ W, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(outs[0], serial, rtol=1e-5, atol=1e-4)


def test_float32_tanh_is_within_two_and_a_half_ulp_with_the_same_bits_under_any_flags():
    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fastmath.fast_tanh(x[i])

    # every flag a kernel may compile it under: the fused multiply-adds keep the same bits under all of them
    @njit(fastmath=fastmath.FAST_ENTRY, error_model="numpy")
    def apply_fast(x, out):
        for i in range(x.shape[0]):
            out[i] = fastmath.fast_tanh(x[i])

    x = np.concatenate([np.linspace(-12, 12, 200_001), np.geomspace(1e-30, 9.0, 20_001), [0.0, -1e-8, np.inf, -np.inf],
                        np.random.default_rng(0).uniform(-1, 1, 200_000)]).astype(np.float32)
    x = np.concatenate([x, -x])
    out, out_fast = np.empty_like(x), np.empty_like(x)
    apply(x, out)
    apply_fast(x, out_fast)
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(out - exact) / ulp) < 2.5
    np.testing.assert_array_equal(out_fast, out)
    nan = np.full(1, np.nan, np.float32)
    apply(nan, nan)
    assert np.isnan(nan[0])  # the divergence check reads non-finite values through tanh
    x64 = np.linspace(-5, 5, 1001)
    out64 = np.empty_like(x64)
    apply(x64, out64)
    # float64 keeps the math library's tanh (within an ulp of numpy's), so gradient checks stay exact
    np.testing.assert_allclose(out64, np.tanh(x64), rtol=5e-16, atol=0)


def test_float32_exp_is_within_one_ulp_and_keeps_the_special_values():
    @njit
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fastmath.fast_exp(x[i])

    x = np.concatenate([np.linspace(-87, 88.7, 400_001), [0.0, -0.0, 1e-30, -1e-8]]).astype(np.float32)
    out = np.empty_like(x)
    apply(x, out)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(out - exact) / ulp) <= 1.0
    special = np.array([np.inf, -np.inf, np.nan, 89.0, -120.0, -1e30], dtype=np.float32)
    out = np.empty_like(special)
    apply(special, out)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, np.exp(special.astype(np.float64)).astype(np.float32))


@pytest.mark.parametrize("n", [1, 5, 9, 15, 16, 17, 33, 16_493])
def test_row_max_equals_numpy(n):
    z = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    assert layers.row_max(z) == z.max()
    z[-1] = 50.0  # the maximum in the tail after the 16-lane blocks
    assert layers.row_max(z) == 50.0


def _sum_in_lanes(z: np.ndarray) -> np.floating:
    """fixed_sum's order, spelled out in numpy: SUM_LANES running sums, folded by halves, then the tail."""
    lanes = np.zeros(SUM_LANES, z.dtype)
    full = len(z) - len(z) % SUM_LANES
    for j0 in range(0, full, SUM_LANES):
        lanes += z[j0 : j0 + SUM_LANES]
    h = SUM_LANES // 2
    while h >= 1:
        lanes[:h] += lanes[h : 2 * h]
        h //= 2
    s = lanes[0]
    for x in z[full:]:
        s += x
    return s


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 100, 1000, 16_493])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fixed_order_sums_add_in_the_order_their_source_gives(n, dtype):
    """fixed_sum is bit for bit the order written in its source (what makes it the same in every compiled
    copy), and fixed_row_dot is the dot product to rounding."""
    rng = np.random.default_rng(n)
    z = rng.standard_normal(n).astype(dtype)
    assert fastmath.fixed_sum(z, np.zeros(SUM_LANES, dtype)) == _sum_in_lanes(z)
    X = rng.standard_normal((3, n + 2)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert fastmath.fixed_row_dot(X, 1, z, n) == pytest.approx(float(X[1, :n].astype(np.float64) @ z), rel=tol,
                                                               abs=tol * np.sqrt(max(n, 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_loss_is_nan_when_a_score_is(dtype):
    Z = np.random.default_rng(0).standard_normal((3, 40)).astype(dtype)
    dZ, lanes = np.empty_like(Z), np.zeros(SUM_LANES, dtype)
    assert np.isfinite(layers.softmax_xent(Z, np.array([1, 2, 3]), 1.0, dZ, lanes))
    Z[1, 7] = np.nan
    assert np.isnan(layers.softmax_xent(Z, np.array([1, 2, 3]), 1.0, dZ, lanes))


def test_float32_softmax_over_a_language_model_vocabulary_matches_float64():
    """softmax_xent sums a float32 row in float32 (32 lanes): over 16,493 words it stays within a few 1e-6 of
    the float64 softmax. Bound: ~500 terms a lane, each rounding <= 6e-8."""
    rng = np.random.default_rng(0)
    B, V = 64, 16_493
    Z = (4 * rng.standard_normal((B, V))).astype(np.float32)
    targets = rng.integers(0, V, B)
    dZ = np.empty_like(Z)
    loss = layers.softmax_xent(Z, targets, 1.0 / B, dZ, np.zeros(SUM_LANES, np.float32))
    z = Z.astype(np.float64)
    mx = z.max(axis=1, keepdims=True)
    total = np.exp(z - mx).sum(axis=1, keepdims=True)
    ref = np.exp(z - mx) / total / B
    ref[np.arange(B), targets] -= 1.0 / B
    ref_loss = float((np.log(total[:, 0]) + mx[:, 0] - z[np.arange(B), targets]).sum())
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    np.testing.assert_allclose(dZ, ref, rtol=2e-5, atol=0)


def check_gemm(call, dtype) -> None:
    """call(ta, tb, alpha, A, B, beta, C) computes C = alpha op(A) @ op(B) + beta C for every transpose pair: one
    row (blas.gemm's own loop, also for a large matrix), one BLAS call, and products large enough for blas.gemm
    to cut into parts of rows (130 rows: 64 + 66) or of columns (3 rows, 2,100 columns)."""
    rng = np.random.default_rng(0)
    for m, k, n in ((7, 5, 3), (1, 5, 3), (6, 613, 3), (130, 400, 100), (3, 700, 2100), (1, 700, 3000)):
        tol = (1e-5 if dtype == np.float32 else 1e-12) * np.sqrt(k)
        for alpha in (-0.5, 1.0):
            for ta in (False, True):
                for tb in (False, True):
                    A = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                    B = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                    big = rng.standard_normal((m + 2, n + 1)).astype(dtype)
                    C = big[1 : m + 1, :n]  # rows strided wider than they are long
                    C0, outside, above = C.copy(), big[:, n].copy(), big[0].copy()
                    call(ta, tb, alpha, A, B, 2.0, C)
                    expect = alpha * (A.T if ta else A) @ (B.T if tb else B) + 2.0 * C0
                    np.testing.assert_allclose(C, expect, rtol=tol, atol=tol)
                    assert np.array_equal(big[:, n], outside)  # the column beyond C's rows is not written
                    assert np.array_equal(big[0], above)  # nor the row before its first


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_with_alpha_beta_and_transposes(dtype):
    @njit
    def call(ta, tb, alpha, A, B, beta, C):
        blas.gemm(ta, tb, alpha, A, B, beta, C)

    check_gemm(call, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scipy_adapter_is_a_row_major_cblas_gemm(dtype):
    """The cblas_?gemm that blas.gemm links to where numpy's OpenBLAS is absent, called as a C function."""
    from winner.core import scipy_blas

    fn = (scipy_blas.sgemm_rowmajor if dtype == np.float32 else scipy_blas.dgemm_rowmajor).ctypes
    pointer = fn.argtypes[7]
    item = np.dtype(dtype).itemsize

    def call(ta, tb, alpha, A, B, beta, C):
        m, n = C.shape
        k = A.shape[0] if ta else A.shape[1]
        fn(CBLAS_ROW_MAJOR, CBLAS_TRANS if ta else CBLAS_NO_TRANS, CBLAS_TRANS if tb else CBLAS_NO_TRANS,
           m, n, k, alpha, A.ctypes.data_as(pointer), A.strides[0] // item, B.ctypes.data_as(pointer),
           B.strides[0] // item, beta, C.ctypes.data_as(pointer), C.strides[0] // item)

    check_gemm(call, dtype)


def test_training_with_scipy_blas_links_the_cached_kernels_and_matches():
    """WINNER_BLAS=scipy in a fresh process, over the same numba cache: the kernels cached against numpy's
    OpenBLAS link to the adapter instead and train to the same parameters (up to BLAS rounding)."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import json, numpy as np\n"
        "from winner.core import runtime\n"
        "from tests.test_fast_paths import make\n"
        "from winner.core.optim import Optimizer\n"
        "model, ids, feats, targets = make({'dtype': 'float32'}, n=40)\n"
        "order = np.arange(len(targets), dtype=np.int64)\n"
        "Optimizer('sgd', lr=0.05).train_batches(model, ids, feats, targets, order, 0, len(order), 8, seed=1)\n"
        "print(json.dumps({'blas': runtime.blas_library(), 'theta': model.theta.tolist()}))\n")
    runs = {}
    for choice in ("numpy", "scipy"):
        env = {**os.environ, "WINNER_BLAS": choice}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        runs[choice] = json.loads(out.stdout.strip().splitlines()[-1])
    assert runs["scipy"]["blas"] == "scipy"
    np.testing.assert_allclose(runs["scipy"]["theta"], runs["numpy"]["theta"], rtol=1e-5, atol=1e-6)


def test_training_steps_allocate_nothing():
    """No temporary arrays in the hot loop: with numba's allocation counter on (a fresh process), 6 more steps
    allocate no more than 2 do, for a language model (direct connections) and a tagger, SGD and Adam, at
    batch 1 (per-window sweep or fused step), 8 (fused step) and 64 (the tagger's distinct-pairs step)."""
    import os
    import subprocess
    import sys

    script = """
import numpy as np
from numba.core.runtime import rtsys
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer
rng = np.random.default_rng(0)
ids = rng.integers(0, 500, (384, 4)).astype(np.int32)
feats, order = np.zeros_like(ids), np.arange(384, dtype=np.int64)
models = {"lm": dict(n_out=500, hidden=(16,), direct=True), "tagger": dict(n_out=9, hidden=(16,))}
for name, kw in models.items():
    targets = rng.integers(0, kw["n_out"], 384)
    for opt_name in ("sgd", "adam"):
        for batch in (1, 8, 64):
            model = WindowMLP(MLPConfig(n_positions=4, vocab_size=500, embed_dim=6, **kw), seed=0)
            opt = Optimizer(opt_name, lr=0.01)
            opt.train_batches(model, ids, feats, targets, order, 0, batch, batch, 0)
            counts = []
            for steps in (2, 6):
                before = rtsys.get_allocation_stats().alloc
                opt.train_batches(model, ids, feats, targets, order, 0, steps * batch, batch, 0)
                counts.append(rtsys.get_allocation_stats().alloc - before)
            print(name, opt_name, batch, counts[0], counts[1])
"""
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, "NUMBA_NRT_STATS": "1"},
                         capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    rows = [line.split() for line in lines if line.strip()]
    assert len(rows) == 12
    for name, opt_name, batch, two, six in rows:
        assert int(six) == int(two), f"{name} {opt_name} batch {batch}: {two} allocations for 2 steps, {six} for 6"


@njit(cache=True)
def _product(trans_a, trans_b, A, B, C):
    blas.gemm(trans_a, trans_b, 1.0, A, B, 0.0, C)


def test_blas_runs_on_one_thread_whatever_the_thread_count():
    """A BLAS's own threads may cut a sum at other points on other thread counts (numpy's OpenBLAS with its Haswell
    kernels on an AMD EPYC does, even for 64 terms), so init() keeps it on one thread and set_threads never
    changes that: numba's threads share a large product's parts instead (blas.gemm_in_parts)."""
    import threadpoolctl

    try:
        for threads in (1, 2, None):
            set_threads(threads)
            blas = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
            assert blas and all(n == 1 for n in blas), (threads, blas)
    finally:
        set_threads(None)


def test_gemm_cuts_a_large_product_into_equal_aligned_parts_along_its_longer_side():
    """blas.gemm's parts depend on the shape alone: none below 2M multiply-adds or for one row; else 2, 4 or 8
    along the columns of a wide product, two (of 32 at least) along the longer side of a sum over a vocabulary, and
    2, 4 or 8 along the rows (64 at least) of any other, covering the side exactly, cut at multiples of 16 and
    within 16 of each other."""
    assert blas.gemm_parts(32, 9, 300) == (True, 1)  # an output layer: too small to share
    assert blas.gemm_parts(1, 16493, 340) == (False, 1)  # one row: its own loop
    assert blas.gemm_parts(32, 300, 550) == (True, 1)  # 32 rows: too few to cut
    assert blas.gemm_parts(128, 300, 550) == (True, 2)
    assert blas.gemm_parts(64, 3000, 100) == (False, 8)
    assert blas.gemm_parts(3, 2100, 700) == (False, 4)
    assert blas.gemm_parts(512, 300, 550) == (True, 8)
    assert blas.gemm_parts(550, 300, 32) == (True, 4)
    assert blas.gemm_parts(130, 100, 300) == (True, 2)
    # a sum over a vocabulary: two parts along the longer side, so the smaller operand is the one read twice
    assert blas.gemm_parts(256, 340, 16493) == (False, 2)
    assert blas.gemm_parts(512, 340, 16493) == (True, 2)
    assert blas.gemm_parts(64, 40, 16493) == (True, 2)  # 64 rows: cut in two all the same
    assert blas.gemm_parts(100, 240, 16493) == (False, 2)
    assert blas.gemm_parts(63, 40, 16493) == (True, 1)
    assert blas.gemm_parts(1024, 500, 2048) == (True, 2)  # not 4 or 8: each part re-reads the 2048-long operand
    assert blas.gemm_parts(64, 9, 1500) == (True, 1)  # too small to share
    for side, parts in ((130, 2), (300, 8), (64, 4), (16493, 8), (97, 2)):
        bounds = [blas.part_bounds(side, parts, i) for i in range(parts)]
        assert bounds[0][0] == 0 and bounds[-1][1] == side
        assert all(hi == lo for (_, hi), (lo, _) in zip(bounds, bounds[1:], strict=False))
        assert all(lo % blas.GEMM_PART_ALIGN == 0 for lo, _ in bounds)
        sizes = [hi - lo for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= blas.GEMM_PART_ALIGN, (side, sizes)


def test_matrix_products_are_the_same_on_any_thread_count():
    """Every product has the same bits on 1 and 2 threads: a large one is cut into parts fixed by its shape,
    which the threads share, each one single-threaded BLAS call. The shapes are a language model's (dA = dZ @ W.T
    over |V| = 5,243 words: 2 parts of rows; its output scores: 8 parts of columns), a tagger's first layer
    (k = 550: 8 parts of rows) and its gradient (2 parts of rows, the last one longer; also 129 rows: 64 + 65),
    a product whose 64 rows are too few to cut, 64 rows summed over 4,099 words (2 parts of 32 rows) and 64 rows
    of 160 columns summed over 4,099 words (2 parts of 80 columns)."""
    rng = np.random.default_rng(0)
    cases = [(False, True, (128, 5243), (32, 5243)), (False, False, (512, 550), (550, 300)),
             (True, False, (200, 129), (200, 300)), (False, False, (64, 100), (100, 3000)),
             (True, False, (700, 64), (700, 96)), (False, False, (64, 4099), (4099, 40)),
             (True, False, (300, 130), (300, 100)), (False, True, (64, 4099), (160, 4099))]
    for trans_a, trans_b, a_shape, b_shape in cases:
        A = rng.standard_normal(a_shape).astype(np.float32)
        B = rng.standard_normal(b_shape).astype(np.float32)
        m = a_shape[1] if trans_a else a_shape[0]
        n = b_shape[0] if trans_b else b_shape[1]
        outs = []
        try:
            for threads in (1, 2):
                set_threads(threads)
                C = np.full((m, n), np.nan, np.float32)
                _product(trans_a, trans_b, A, B, C)
                outs.append(C)
        finally:
            set_threads(None)
        assert np.array_equal(outs[0], outs[1]), (trans_a, trans_b, a_shape, b_shape)
        expect = (A.T if trans_a else A) @ (B.T if trans_b else B)
        np.testing.assert_allclose(outs[0], expect, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("table_words", [0, 1, 3])
def test_lookup_chunks_smaller_than_one_window_equal_gemm(table_words, monkeypatch):
    """A per-chunk table for fewer words than a window holds: each chunk is one window and its P words."""
    model, ids, feats, _ = make({}, n=200)
    monkeypatch.setattr(mlp_module, "LOOKUP_TABLE_BYTES", table_words * 5 * model.config.hidden[0] * 8)
    np.testing.assert_allclose(model.predict_log_proba(ids, feats, method="lookup"),
                               model.predict_log_proba(ids, feats, method="gemm"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 7, 5), (4, 100, 300), (67, 33, 10), (130, 100, 299)])
def test_stable_product_equals_numpy(m, k, n, dtype):
    """The first-layer tables' product, by 4 x 4 blocks with zero padding, against numpy's float64 product."""
    rng = np.random.default_rng(m + k + n)
    A, B = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    expect = A.astype(np.float64) @ B.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    got = lookup.stable_product(A, B)
    assert got.dtype == dtype and got.shape == (m, n)
    np.testing.assert_allclose(got, expect, rtol=tol, atol=tol * np.sqrt(k))
    out = np.full((m, 3, n), np.nan, dtype)
    lookup.stable_product(A, B, out, 1)
    assert np.array_equal(out[:, 1], got) and np.isnan(out[:, 0]).all() and np.isnan(out[:, 2]).all()


def test_stable_product_rows_do_not_depend_on_their_neighbours_or_the_thread_count():
    """A row's bits depend on that row alone: moved, alone, in a subset, with a different row count mod 4, or
    on another thread count. (A BLAS need not: OpenBLAS's Haswell kernels change ~13% of a moved row's entries.)"""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((203, 100)).astype(np.float32)
    B = rng.standard_normal((100, 300)).astype(np.float32)
    whole = lookup.stable_product(A, B)
    for shift in (1, 2, 3, 5, 64, 77):
        assert np.array_equal(lookup.stable_product(np.roll(A, shift, axis=0), B), np.roll(whole, shift, axis=0))
    for lo, hi in ((0, 1), (5, 6), (7, 12), (1, 130), (100, 203)):
        assert np.array_equal(lookup.stable_product(A[lo:hi], B), whole[lo:hi]), (lo, hi)
    order = rng.permutation(203)
    assert np.array_equal(lookup.stable_product(A[order], B), whole[order])
    try:
        set_threads(1)
        one = lookup.stable_product(A, B)
        set_threads(2)
        two = lookup.stable_product(A, B)
    finally:
        set_threads(None)
    assert np.array_equal(one, whole) and np.array_equal(two, whole)


def test_lookup_tables_of_different_word_sets_agree_bit_for_bit():
    """Per-chunk tables hold different words at different rows; a window's log-probabilities are the same bits
    whichever table served it: whole vocabulary, chunk tables of any size, or the windows one at a time."""
    model, ids, feats, _ = make({"dtype": "float32", "hidden": (64,), "vocab_size": 200}, n=600)
    whole = model.predict_log_proba(ids, feats, method="lookup")
    assert model._vocab_table is not None
    model._vocab_table = None
    for words in (7, 40, 111):
        mlp_module.LOOKUP_TABLE_BYTES, saved = words * 5 * 64 * 4, mlp_module.LOOKUP_TABLE_BYTES
        try:
            chunked = model.predict_log_proba(ids, feats, method="lookup")
        finally:
            mlp_module.LOOKUP_TABLE_BYTES = saved
        assert np.array_equal(chunked, whole), words
    model._vocab_table = None
    one_by_one = np.concatenate([model.predict_log_proba(ids[i : i + 1], feats[i : i + 1], method="lookup")
                                 for i in range(0, 600, 37)])
    assert np.array_equal(one_by_one, whole[::37])
