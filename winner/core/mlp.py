"""The window MLP: embedding gather -> hidden layers -> output, over the kernels of layers, steps and lookup.

One class serves all three heads. Dimensions are named once in MLPConfig; parameters are views
into one flat vector (see layers.py) plus the word table E and the feature table F. The model
owns its scratch buffers, so a training step allocates nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from winner.core import layers, lookup, runtime, steps, updates
from winner.core.fastmath import RELU, SIGMOID, SUM_LANES, TANH
from winner.core.memory import require_memory
from winner.errors import ModelFormatError

LOOKUP_TABLE_BYTES = 256 << 20  # the lookup path's (position, word) table is at most this big per chunk
ACTIVATIONS = {"tanh": TANH, "sigmoid": SIGMOID, "relu": RELU}
LOSSES = {"softmax": layers.LOSS_SOFTMAX, "sigmoid": layers.LOSS_SIGMOID, "none": layers.LOSS_NONE}


@dataclass
class VocabularyTable:
    """The lookup path's first-layer table for the whole vocabulary, with copies of the parameters it was
    computed from: it is used only while the model still has exactly those (any training step or set_params
    changes them), so it can never be stale."""

    T: np.ndarray  # (V, P, H0): E[w] @ W0[rows of position p]
    C: np.ndarray  # (P, Vf, H0 or 0): the same for the feature table
    WT: np.ndarray  # theta with the upper layers transposed
    theta: np.ndarray
    E: np.ndarray
    F: np.ndarray
    derived: dict = field(default_factory=dict)  # other tables of the same parameters (context codes' projections)

    @classmethod
    def build(cls, model: WindowMLP) -> VocabularyTable:
        c = model.config
        V, P, H0 = c.vocab_size, c.n_positions, c.hidden[0]
        T = np.empty((V, P, H0), model.dtype)
        C = np.empty((P, c.n_features, H0 if c.feature_dim else 0), model.dtype)
        lookup.first_layer_tables(model.E, model.F, model._views["W0"], None, T, C)
        return cls(T, C, model._transposed_theta(), model.theta.copy(), model.E.copy(), model.F.copy())

    def matches(self, model: WindowMLP) -> bool:
        return (np.array_equal(self.theta, model.theta) and np.array_equal(self.E, model.E)
                and np.array_equal(self.F, model.F))


@dataclass
class MLPConfig:
    """Every dimension of a window MLP, named once."""

    n_positions: int  # words per window (2w+1), or context length for the LM
    vocab_size: int
    embed_dim: int
    n_out: int
    hidden: tuple[int, ...] = (300,)
    n_features: int = 1  # size of the per-token feature vocabulary (casing); 1 and feature_dim 0 = unused
    feature_dim: int = 0
    activation: str = "tanh"
    direct: bool = False  # Bengio et al.'s direct input -> output connections
    loss: str = "softmax"
    dropout_input: float = 0.0
    dropout_hidden: float = 0.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {self.loss!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("dropout_input", "dropout_hidden"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if any(h <= 0 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive, got {self.hidden}")

    @property
    def n_in(self) -> int:
        return self.n_positions * (self.embed_dim + self.feature_dim)

    @property
    def sizes(self) -> np.ndarray:
        return np.array([self.n_in, *self.hidden, self.n_out], dtype=np.int64)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every parameter, in the order they sit in theta (E and F first)."""
        shapes: dict[str, tuple[int, ...]] = {
            "E": (self.vocab_size, self.embed_dim),
            "F": (self.n_features, self.feature_dim),
        }
        s = self.sizes
        for l in range(len(s) - 1):
            shapes[f"W{l}"] = (int(s[l]), int(s[l + 1]))
            shapes[f"b{l}"] = (int(s[l + 1]),)
        if self.direct:
            shapes["D"] = (self.n_in, self.n_out)
        return shapes

    def check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        """A ModelFormatError naming the dimensions when parameter `name` does not have the config's shape."""
        expected = self.param_shapes()[name]
        if tuple(shape) != expected:
            raise ModelFormatError(f"{name} is {tuple(shape)}, expected {self.describe(name)} = {expected}")

    def describe(self, name: str) -> str:
        """Which dimensions a parameter's shape is made of, for error messages."""
        n_layers = len(self.hidden) + 1
        dims = ["n_in=(2*window+1)*(embed_dim+feature_dim)", *[f"hidden[{i}]" for i in range(len(self.hidden))],
                "n_out"]
        if name == "E":
            return "(vocab_size, embed_dim)"
        if name == "F":
            return "(n_features, feature_dim)"
        if name == "D":
            return "(n_in, n_out)"
        l = int(name[1:])
        if l >= n_layers:
            return "?"
        if name[0] == "W":
            return f"({dims[l]}, {dims[l + 1]})"
        return f"({dims[l + 1]},)"


@dataclass
class SparseGrads:
    """Gradients of one update: dense for theta, (row ids, row gradients) for the tables."""

    theta: np.ndarray
    rows_E: np.ndarray
    G_E: np.ndarray
    rows_F: np.ndarray
    G_F: np.ndarray


@dataclass
class Buffers:
    """Scratch space for batches of up to `capacity` windows; grown on demand."""

    capacity: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    scratch: layers.Scratch | None = None  # the same arrays as the kernels take them


class WindowMLP:
    """Parameters, scratch buffers and the Python face of the kernels."""

    def __init__(self, config: MLPConfig, seed: int = 0, E: np.ndarray | None = None,
                 F: np.ndarray | None = None):
        runtime.init()
        self.config = config
        self.dtype = np.dtype(config.dtype)
        self.sizes = config.sizes
        rng = np.random.default_rng(seed)
        n_params = sum(math.prod(shape) for shape in config.param_shapes().values())
        require_memory(3 * n_params * self.dtype.itemsize, f"a model of {n_params:,} parameters (with gradients and "
                       "optimiser state)", "choose a smaller --hidden, --embed-dim, --char-filters or vocabulary")
        self.theta = np.zeros(int(layers.theta_size(self.sizes, config.direct)), dtype=self.dtype)
        self.weight_mask = np.zeros(self.theta.shape[0], dtype=np.uint8)
        self._views: dict[str, np.ndarray] = {}
        off = 0
        for name, shape in config.param_shapes().items():
            if name in ("E", "F"):
                continue
            n = int(np.prod(shape))
            view = self.theta[off : off + n].reshape(shape)
            if name[0] in "WD":
                fan_in, fan_out = shape
                limit = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot & Bengio 2010, uniform
                view[...] = rng.uniform(-limit, limit, size=shape)
                self.weight_mask[off : off + n] = 1
            self._views[name] = view
            off += n
        assert off == self.theta.shape[0]
        self.E = self._table(E, (config.vocab_size, config.embed_dim), rng, "E")
        self.F = self._table(F, (config.n_features, config.feature_dim), rng, "F")
        self.grad = np.zeros_like(self.theta)
        self._buf = Buffers()
        self.slot_E = np.full(config.vocab_size, -1, dtype=np.int32)
        self.slot_F = np.full(config.n_features, -1, dtype=np.int32)
        self._vocab_table: VocabularyTable | None = None
        self._kernel_params = layers.Params(self.E, self.F, self.theta, self.sizes, self.weight_mask)
        # the kernels' scalars, with dropout (training) and without
        self._nets = {train: layers.Net(bool(config.direct), ACTIVATIONS[config.activation], LOSSES[config.loss],
                                        float(config.dropout_input) if train else 0.0,
                                        float(config.dropout_hidden) if train else 0.0) for train in (False, True)}

    def _table(self, given: np.ndarray | None, shape: tuple[int, int], rng: np.random.Generator,
               name: str) -> np.ndarray:
        if given is None:
            # std 0.5: of the order of pretrained vectors, so tanh units start unsaturated
            a = 0.5 * np.sqrt(3.0)
            return rng.uniform(-a, a, size=shape).astype(self.dtype)
        if given.shape != shape:
            raise ModelFormatError(f"{name} is {given.shape}, expected {self.config.describe(name)} = {shape}")
        return np.ascontiguousarray(given, dtype=self.dtype)

    # ------------------------------------------------------------ parameters

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Name -> array (views: writing into them changes the model)."""
        return {"E": self.E, "F": self.F, **self._views}

    def flat_params(self) -> dict[str, np.ndarray]:
        """Every parameter once, as the model's own contiguous arrays (`params` are views into them): what an
        average of the weights keeps and `use_params` swaps."""
        return {"theta": self.theta, "E": self.E, "F": self.F}

    def set_params(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy named arrays into the model, checking every shape against the config."""
        for name in self.config.param_shapes():
            if name not in arrays:
                raise ModelFormatError(f"parameter {name} is missing, expected {self.config.describe(name)}")
            a = arrays[name]
            self.config.check_shape(name, a.shape)
            if a.dtype.kind not in "fiu":
                raise ModelFormatError(f"{name} holds {a.dtype} values, expected real numbers")
            if not np.isfinite(a).all():
                raise ModelFormatError(f"{name} holds NaN or infinite values (a diverged model?)")
            self.params[name][...] = a

    def n_parameters(self) -> int:
        return int(self.theta.size + self.E.size + self.F.size)

    # ------------------------------------------------------------ buffers

    def buffers(self, batch: int) -> dict[str, np.ndarray]:
        """Scratch arrays for batches of up to `batch` windows."""
        need = batch
        if self._buf.capacity < need:
            c = self.config
            # the layers' inputs, then (direct connections) [A_last, 1, X] for the combined top product
            width = int(self.sizes[:-1].sum()) + (int(self.sizes[-2]) + 1 + int(self.sizes[0]) if c.direct else 0)
            n_acts = need * width
            P = c.n_positions
            max_rows_E = min(c.vocab_size, need * P)
            max_rows_F = min(c.n_features, need * P)
            dt = self.dtype
            require_memory((3 * n_acts + 2 * need * c.n_out + max_rows_E * c.embed_dim) * dt.itemsize,
                           f"a batch of {need:,} windows", "choose a smaller --batch-size")
            self._buf = Buffers(need, {
                "acts": np.zeros(n_acts, dt), "keep": np.ones(n_acts, dt), "dacts": np.zeros(n_acts, dt),
                "Z": np.zeros((need, c.n_out), dt), "dZ": np.zeros((need, c.n_out), dt),
                "rows_E": np.zeros(max_rows_E, np.int32), "G_E": np.zeros((max_rows_E, c.embed_dim), dt),
                "rows_F": np.zeros(max_rows_F, np.int32), "G_F": np.zeros((max_rows_F, c.feature_dim), dt),
                "ids": np.zeros((need, P), np.int32), "feats": np.zeros((need, P), np.int32),
                "targets": np.zeros(need, np.int64), "lanes": np.zeros(SUM_LANES, dt),
            })
            a = self._buf.arrays
            self._buf.scratch = layers.Scratch(
                a["ids"], a["feats"], a["targets"], a["acts"], a["keep"], a["dacts"], a["Z"], a["dZ"], self.grad,
                self.slot_E, a["rows_E"], a["G_E"], self.slot_F, a["rows_F"], a["G_F"], a["lanes"])
        return self._buf.arrays

    def scratch(self, batch: int) -> layers.Scratch:
        """The scratch arrays for batches of up to `batch` windows, as the kernels take them."""
        self.buffers(batch)
        return self._buf.scratch

    @property
    def kernel_params(self) -> layers.Params:
        """The parameters as the kernels take them (built again only if an array was replaced)."""
        p = self._kernel_params
        if p.E is not self.E or p.F is not self.F or p.theta is not self.theta:
            p = self._kernel_params = layers.Params(self.E, self.F, self.theta, self.sizes, self.weight_mask)
        return p

    def kernel_net(self, train: bool) -> layers.Net:
        """The scalars the kernels take: activation, loss, direct connections, dropout when training."""
        return self._nets[bool(train)]

    def pair_buffers(self, batch: int) -> steps.PairScratch:
        """Scratch of steps.sgd_step_pairs for batches of up to `batch` windows (0: tiny placeholders)."""
        c = self.config
        if getattr(self, "_pairs", None) is None or self._pairs[0].shape[0] < batch:
            n = batch * c.n_positions
            H0 = c.hidden[0] if c.hidden and batch else 0
            d = c.embed_dim if batch else 0
            dt = self.dtype
            self._pairs = steps.PairScratch(
                np.zeros((batch, c.n_positions), np.int32), np.zeros(n, np.int32),
                np.zeros(c.n_positions + 1, np.int64), np.zeros((n, d), dt), np.zeros((n, H0), dt),
                np.zeros((n + 1, H0), dt), np.zeros((n, d), dt))
        return self._pairs

    def _check_inputs(self, ids: np.ndarray, feats: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        if ids.ndim != 2 or ids.shape[1] != self.config.n_positions:
            raise ValueError(f"ids must be (N, {self.config.n_positions}), got {ids.shape}")
        if feats is None:
            feats = np.zeros_like(ids)
        feats = np.ascontiguousarray(feats, dtype=np.int32)
        if feats.shape != ids.shape:
            raise ValueError(f"feats must have the shape of ids {ids.shape}, got {feats.shape}")
        self.check_ids(ids, feats)
        return ids, feats

    def check_ids(self, ids: np.ndarray, feats: np.ndarray, n_words: int | None = None) -> None:
        """Refuse ids outside the tables (word ids below n_words, the vocabulary's size unless given): the kernels
        do not bounds-check, so a bad id would read other memory."""
        n_words = self.config.vocab_size if n_words is None else n_words
        for name, a, n in (("word id", ids, n_words), ("feature id", feats, self.config.n_features)):
            if a.size and (int(a.min()) < 0 or int(a.max()) >= n):
                raise ValueError(f"{name}s must lie in [0, {n}), found {int(a.min())}..{int(a.max())}")

    def _require_targets_loss(self) -> None:
        if self.config.loss == "none":
            raise ValueError("this model has loss 'none' (raw scores): train it through forward/backprop with the "
                             "head's own loss, not with targets")

    # ------------------------------------------------------------ inference

    def predict_logits(self, ids: np.ndarray, feats: np.ndarray | None = None, batch: int = 1024,
                       method: str = "gemm") -> np.ndarray:
        """Output scores (N, n_out) with dropout off; a batch gives the same rows as one by one.

        method "gemm": matrix products batch by batch (the straightforward path). "lookup": the first layer
        as sums of precomputed (position, word) rows (`lookup_supported` models; equal to "gemm" to float
        rounding, several times faster when words repeat). "auto": lookup when supported and the windows
        hold fewer than half as many distinct words as windows.
        """
        return self._predict(ids, feats, batch, method, log_proba=False)

    def predict_log_proba(self, ids: np.ndarray, feats: np.ndarray | None = None, batch: int = 1024,
                          method: str = "gemm") -> np.ndarray:
        """log softmax of the logits, (N, n_out); `method` as in predict_logits."""
        return self._predict(ids, feats, batch, method, log_proba=True)

    @property
    def lookup_supported(self) -> bool:
        """The lookup path needs a hidden layer and no direct input->output connections."""
        return bool(self.config.hidden) and not self.config.direct

    def _predict(self, ids: np.ndarray, feats: np.ndarray | None, batch: int, method: str,
                 log_proba: bool) -> np.ndarray:
        if method not in ("gemm", "lookup", "auto"):
            raise ValueError(f"method must be gemm, lookup or auto, got {method!r}")
        ids, feats = self._check_inputs(ids, feats)
        if method == "lookup" and not self.lookup_supported:
            raise ValueError("the lookup path needs a hidden layer and no direct connections")
        if method == "auto":
            few = ids.shape[0] >= 64 and 2 * len(np.unique(ids[:4096])) < min(4096, ids.shape[0])
            method = "lookup" if self.lookup_supported and few else "gemm"
        if method == "lookup":
            return self._predict_lookup(ids, feats, log_proba)
        scratch = self.scratch(min(batch, max(1, ids.shape[0])))
        out = np.zeros((ids.shape[0], self.config.n_out), dtype=self.dtype)
        cap = self._buf.capacity
        layers.predict_batches(ids, feats, self.kernel_params, self.kernel_net(False), min(batch, cap), scratch, out)
        if log_proba:
            layers.log_softmax_rows(out, out)
        return out

    def _predict_lookup(self, ids: np.ndarray, feats: np.ndarray, log_proba: bool) -> np.ndarray:
        """From the whole vocabulary's table when there is one (see VocabularyTable), else in chunks of
        windows whose distinct words fit a table of at most LOOKUP_TABLE_BYTES."""
        c = self.config
        N, P = ids.shape
        act = ACTIVATIONS[c.activation]
        out = np.empty((N, c.n_out), self.dtype)
        table = self.vocabulary_table(N * P)
        if table is not None:
            lookup.lookup_logits(ids, feats, table.T, table.C, self.theta, table.WT, self.sizes, act, log_proba, out,
                                 lookup.NO_EXTRA)
            return out
        H0 = c.hidden[0]
        W0 = self._views["W0"]
        max_unique = max(1, min(c.vocab_size, LOOKUP_TABLE_BYTES // (P * H0 * self.dtype.itemsize)))
        max_unique = min(max_unique, N * P)
        T = np.empty((max_unique + P, P, H0), self.dtype)  # a chunk's first window may bring P new words
        C = np.empty((P, c.n_features, H0 if c.feature_dim else 0), self.dtype)
        uniq = np.empty(max_unique + P, np.int32)
        WT = self._transposed_theta()
        local = np.empty((N, P), np.int32)
        start = 0
        while start < N:
            stop, U = lookup.compact_rows(ids, start, self.slot_E, uniq, max_unique)
            lookup.local_ids(ids, start, stop, self.slot_E, uniq, U, local)
            lookup.first_layer_tables(self.E, self.F, W0, uniq[:U], T[:U], C)
            lookup.lookup_logits(local[: stop - start], feats[start:stop], T, C, self.theta, WT, self.sizes, act,
                                 log_proba, out[start:stop], lookup.NO_EXTRA)
            start = stop
        return out

    def _transposed_theta(self) -> np.ndarray:
        """theta with every layer above the first stored transposed, so each output is a contiguous dot product."""
        WT = self.theta.copy()
        for l in range(1, len(self.config.hidden) + 1):
            w = self._views[f"W{l}"]
            off = self._offset(f"W{l}")
            WT[off : off + w.size] = w.T.ravel()
        return WT

    def vocabulary_table(self, n_lookups: int) -> VocabularyTable | None:
        """Every (word, position) pair's first-layer contribution, computed once and kept while the parameters
        stay as they were (Collobert et al. 2011 precompute it after training).

        Only when it fits in LOOKUP_TABLE_BYTES, and built only for a call that looks up at least as many
        words as the vocabulary has, so that building it costs no more than the per-chunk tables it replaces.
        """
        c = self.config
        if c.vocab_size * c.n_positions * c.hidden[0] * self.dtype.itemsize > LOOKUP_TABLE_BYTES:
            return None
        table = self._vocab_table
        if table is not None and table.matches(self):
            return table
        self._vocab_table = None
        if n_lookups < c.vocab_size:
            return None
        self._vocab_table = VocabularyTable.build(self)
        return self._vocab_table

    def _offset(self, name: str) -> int:
        off = 0
        for k, v in self._views.items():
            if k == name:
                return off
            off += v.size
        raise KeyError(name)

    # ------------------------------------------------------------ gradients

    def loss_and_grad(self, ids: np.ndarray, feats: np.ndarray | None, targets: np.ndarray,
                      l2: float = 0.0, l1: float = 0.0, train: bool = False, seed: int = 0,
                      step: int = 0) -> tuple[float, dict[str, np.ndarray]]:
        """Mean loss of one batch and dense gradients for every parameter (E and F as full tables).

        For tests and gradient checks: training uses the fused `train_batches` path instead.
        """
        self._require_targets_loss()
        ids, feats = self._check_inputs(ids, feats)
        targets = np.ascontiguousarray(targets, dtype=np.int64)
        scratch = self.scratch(ids.shape[0])
        loss, nE, nF = steps.loss_and_grad(ids, feats, targets, self.kernel_params, self.kernel_net(train), seed, step,
                                           float(l2), float(l1), scratch)
        updates.clear_slots(self.slot_E, scratch.rowsE, nE)
        updates.clear_slots(self.slot_F, scratch.rowsF, nF)
        grads = self._dense_grads(self._buf.arrays, nE, nF)
        return float(loss), grads

    def _dense_grads(self, b: dict[str, np.ndarray], nE: int, nF: int) -> dict[str, np.ndarray]:
        gE = np.zeros_like(self.E)
        gE[b["rows_E"][:nE]] = b["G_E"][:nE]
        gF = np.zeros_like(self.F)
        gF[b["rows_F"][:nF]] = b["G_F"][:nF]
        grads = {"E": gE, "F": gF}
        off = 0
        for name, view in self._views.items():
            grads[name] = self.grad[off : off + view.size].reshape(view.shape).copy()
            off += view.size
        return grads

    def forward(self, ids: np.ndarray, feats: np.ndarray | None = None, train: bool = False, seed: int = 0,
                step: int = 0):
        """thinc-style forward: returns (Z, backprop) for one batch.

        backprop(dZ) zeroes and fills `self.grad` and the sparse row buffers and returns a `SparseGrads`.
        A head that needs two kinds of windows in one update (the scorer's true and corrupt windows)
        stacks them into one batch, so every use of a parameter adds into the same gradient.
        Only the most recent forward can be backpropagated: the activations live in shared buffers.
        """
        ids, feats = self._check_inputs(ids, feats)
        B = ids.shape[0]
        scratch = self.scratch(B)
        b = self._buf.arrays
        c = self.config
        Z = scratch.Z[:B]
        layers.forward(ids, feats, self.kernel_params, self.kernel_net(train), seed, step, scratch)
        self._forward_token = token = object()

        def backprop(dZ: np.ndarray) -> SparseGrads:
            if self._forward_token is not token:
                raise RuntimeError("backprop called after a later forward overwrote the activations")
            dZ = np.ascontiguousarray(dZ, dtype=self.dtype)
            if dZ.shape != (B, c.n_out):
                raise ValueError(f"dZ must be {(B, c.n_out)}, got {dZ.shape}")
            self.grad[:] = 0.0
            layers.backward(self.kernel_params, self.kernel_net(train), scratch, dZ)
            return self._scatter(ids, feats, b)

        return Z.copy(), backprop

    def _scatter(self, ids: np.ndarray, feats: np.ndarray, b: dict[str, np.ndarray]) -> SparseGrads:
        B = ids.shape[0]
        d, df = self.config.embed_dim, self.config.feature_dim
        dX = b["dacts"][: B * self.config.n_in].reshape(B, self.config.n_in)
        nE = updates.scatter_rows(ids, dX, 0, d, d + df, self.slot_E, b["rows_E"], b["G_E"], 0)
        nF = updates.scatter_rows(feats, dX, d, df, d + df, self.slot_F, b["rows_F"], b["G_F"], 0)
        updates.clear_slots(self.slot_E, b["rows_E"], nE)
        updates.clear_slots(self.slot_F, b["rows_F"], nF)
        return SparseGrads(self.grad, b["rows_E"][:nE], b["G_E"][:nE], b["rows_F"][:nF], b["G_F"][:nF])

    # ------------------------------------------------------------ I/O

    @contextlib.contextmanager
    def use_params(self, arrays: dict[str, np.ndarray]) -> Iterator[None]:
        """Inside: `arrays` (any of flat_params' names) in place of the model's own (e.g. an average), copied in
        and the originals put back after."""
        own = self.flat_params()
        saved = {name: own[name].copy() for name in arrays}
        for name, value in arrays.items():
            own[name][...] = value
        try:
            yield
        finally:
            for name, value in saved.items():
                own[name][...] = value

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.array(v) for k, v in self.params.items()}

    @classmethod
    def from_arrays(cls, config: MLPConfig, arrays: dict[str, np.ndarray]) -> WindowMLP:
        model = cls(config, seed=0, E=np.zeros((config.vocab_size, config.embed_dim)),
                    F=np.zeros((config.n_features, config.feature_dim)))
        model.set_params(arrays)
        return model

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


def load_params_npz(path: Path) -> dict[str, np.ndarray]:
    """Arrays from an npz file, never unpickling (loading must not execute code)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise ModelFormatError(f"{path}: cannot read parameters, truncated or not an npz file "
                               f"({type(e).__name__}: {e})") from None
