"""Character windows: each word's vector from a convolution over windows of its characters, max-pooled over
positions (dos Santos & Zadrozny 2014, "Learning Character-level Representations for Part-of-Speech Tagging").

The character vector of word row w sits in the last `n_filters` columns of the MLP's word table, E[w, col0:], so
the window kernels (and the lookup path's (position, word) tables) read it like any embedding column. Training
refreshes those columns for the words of each minibatch from the current filters, runs the ordinary step, and
backpropagates the columns' gradient, dL/dE[w, col0:], through the max into the filters and the character
embeddings. Outside training the columns hold every vocabulary word's vector (`fill_vocabulary`), so tagging
computes it only for words the vocabulary does not have.

The convolution is linear in the character embeddings, so r_f = max_t (b_f + sum_k P[k, c_(t+k), f]) with
P[k] = Cemb @ W[k*cd:(k+1)*cd] computed once per parameter change: a word costs (positions x width x filters)
additions, not a matrix product per position.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from winner.core import layers, lookup, runtime, steps
from winner.core.blas import gemm
from winner.core.fastmath import FAST
from winner.core.mlp import ACTIVATIONS, MLPConfig, WindowMLP
from winner.core.optim import Optimizer
from winner.core.updates import OPT_SGD, AdamState, adam_dense, clear_slots, number_row, sgd_dense
from winner.errors import ModelFormatError

CHAR_PAD, CHAR_UNKNOWN = 0, 1  # character ids: padding beyond a word's ends, a character not in the alphabet
MAX_WORD_CHARS = 30  # longer words are cut: a URL's 200th character says nothing about its tag


@dataclass
class CharConfig:
    """The character CNN's dimensions."""

    n_chars: int  # alphabet size, CHAR_PAD and CHAR_UNKNOWN included
    char_dim: int
    n_filters: int
    width: int  # characters per convolution window (odd: centred on each character)

    def __post_init__(self) -> None:
        if self.width < 1 or self.width % 2 == 0:
            raise ValueError(f"char width must be odd and positive, got {self.width}")
        if min(self.n_chars - 2, self.char_dim, self.n_filters) < 1:
            raise ValueError(f"char dimensions must be positive, got {self}")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The parameters' shapes, in the order they sit in the flat vector."""
        return {"char_E": (self.n_chars, self.char_dim), "char_W": (self.width * self.char_dim, self.n_filters),
                "char_b": (self.n_filters,)}


class CharNet(NamedTuple):
    """The character CNN as the kernels take it: parameters (views into theta) and the words' characters."""

    C: np.ndarray  # (n_chars, cd) character embeddings
    W: np.ndarray  # (width * cd, nf) filters, the rows of window offset k at k*cd:(k+1)*cd
    b: np.ndarray  # (nf,)
    theta: np.ndarray  # C, W, b flat
    chars: np.ndarray  # int32: every word's padded character ids, one after another
    offsets: np.ndarray  # (n_words + 1,) int64: word w's are chars[offsets[w]:offsets[w+1]]
    P: np.ndarray  # (width, n_chars, nf): P[k] = C @ W[k*cd:(k+1)*cd], see project
    col0: int  # the character vector's first column in E


class CharTrain(NamedTuple):
    """Scratch of train_batches_chars: the batch's distinct words, their argmax positions and gradients."""

    grad: np.ndarray  # like CharNet.theta
    gC: np.ndarray  # views of grad
    gW: np.ndarray
    gb: np.ndarray
    m: np.ndarray  # Adam's moments of CharNet.theta (tiny under SGD)
    v: np.ndarray
    slot: np.ndarray  # (V,) int32, -1 between batches
    uniq: np.ndarray  # (cap * P,) int32 the batch's distinct word rows
    argmax: np.ndarray  # (cap * P, nf) int32
    dc: np.ndarray  # (cap * P, nf) dL/d(character vector)
    pairs: steps.PairScratch  # a placeholder: the character columns need dX, which the pairs step never forms


# ---------------------------------------------------------------- kernels


@njit(cache=True, fastmath=FAST, error_model="numpy")
def project(net):
    """net.P[k] = C @ W[k*cd:(k+1)*cd]: each character's contribution to every filter at window offset k."""
    cd = net.C.shape[1]
    for k in range(net.P.shape[0]):
        gemm(False, False, 1.0, net.C, net.W[k * cd : (k + 1) * cd], 0.0, net.P[k])


@njit(cache=True, fastmath=FAST, error_model="numpy")
def word_vector(net, w, out, arg):
    """out[f] = max over positions t of b[f] + sum_k P[k, chars_w[t+k], f]; arg[f] = the first such t."""
    P, b = net.P, net.b
    width, nf = P.shape[0], P.shape[2]
    o = net.offsets[w]
    n_pos = net.offsets[w + 1] - o - width + 1
    for t in range(n_pos):
        for f in range(nf):
            s = b[f]
            for k in range(width):
                s += P[k, net.chars[o + t + k], f]
            if t == 0 or s > out[f]:
                out[f] = s
                arg[f] = t


@njit(cache=True, fastmath=FAST, error_model="numpy")
def fill_rows(net, rows, n, E, argmax):
    """E[rows[i], col0:] = the character vector of word rows[i], for i < n (argmax: (>= n, nf) int32)."""
    nf = net.b.shape[0]
    for i in range(n):
        word_vector(net, rows[i], E[rows[i], net.col0 : net.col0 + nf], argmax[i])


# Parallel and cached: safe once winner.core.runtime.init() has run. Words are independent: the result does not
# depend on the thread count.
@njit(cache=True, parallel=True, fastmath=FAST, error_model="numpy")
def fill_all_rows(net, E):
    """Every word's character vector into E[w, col0:]."""
    n = net.offsets.shape[0] - 1
    nf = net.b.shape[0]
    chunk = 1024
    for c in prange((n + chunk - 1) // chunk):
        arg = np.empty(nf, np.int32)
        for w in range(c * chunk, min(n, (c + 1) * chunk)):
            word_vector(net, w, E[w, net.col0 : net.col0 + nf], arg)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def backprop_words(net, rows, n, dc, argmax, gC, gW, gb):
    """Add the gradients of C, W, b from dc[i] = dL/d(character vector of word rows[i]), through the max (the
    argmax position takes the whole gradient)."""
    cd = net.C.shape[1]
    width = net.P.shape[0]
    for i in range(n):
        o = net.offsets[rows[i]]
        for f in range(net.b.shape[0]):
            g = dc[i, f]
            if g == 0.0:
                continue
            gb[f] += g
            t = argmax[i, f]
            for k in range(width):
                c = net.chars[o + t + k]
                for j in range(cd):
                    gW[k * cd + j, f] += g * net.C[c, j]
                    gC[c, j] += g * net.W[k * cd + j, f]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def gather_column_grads(ids, dX, stride, col0, slot, dc, n):
    """dc[slot[w]] = the sum over the batch's uses of word w of dX's character columns. ids: (B, P); dX:
    (B, P*stride); the character vector of position p is dX[:, p*stride + col0 : p*stride + col0 + nf]."""
    B, P = ids.shape
    nf = dc.shape[1]
    dc[:n] = 0.0
    for b in range(B):
        for p in range(P):
            u = slot[ids[b, p]]
            base = p * stride + col0
            for f in range(nf):
                dc[u, f] += dX[b, base + f]


@njit(cache=True, fastmath=FAST, error_model="numpy")
def char_step(ids, params, hyper, t, scratch, net, tr, n):
    """The character CNN's share of a step the MLP has just taken on windows ids: its gradient from the
    character columns of dX (left by the step), then SGD or Adam (step t) on net.theta."""
    B = ids.shape[0]
    n_in = params.sizes[0]
    stride = n_in // ids.shape[1]
    dX = scratch.dacts[0 : B * n_in].reshape(B, n_in)
    gather_column_grads(ids, dX, stride, net.col0, tr.slot, tr.dc, n)
    tr.grad[:] = 0.0
    backprop_words(net, tr.uniq, n, tr.dc, tr.argmax, tr.gC, tr.gW, tr.gb)
    if hyper.opt == OPT_SGD:
        sgd_dense(net.theta, tr.grad, hyper.lr)
    else:
        adam_dense(net.theta, tr.grad, tr.m, tr.v, hyper.lr, hyper.beta1, hyper.beta2, hyper.eps, t)


@njit(cache=True, fastmath=FAST, error_model="numpy")
def stage_words(bids, E, cnet, tr):
    """Number the distinct words of windows bids in tr.slot / tr.uniq and give them their character vectors
    in E's last columns from the current filters; returns how many there are."""
    n = 0
    for b in range(bids.shape[0]):
        for p in range(bids.shape[1]):
            n = number_row(bids[b, p], tr.slot, tr.uniq, n)
    project(cnet)
    fill_rows(cnet, tr.uniq, n, E, tr.argmax)
    return n


@njit(cache=True, fastmath=FAST, error_model="numpy")
def char_train_step(params, net, seed, step, hyper, adam, scratch, cnet, tr, B):
    """steps.train_step on the B windows staged in scratch, with character vectors: first the batch's words get
    theirs in E's last columns from the current filters; after the step the filters and character embeddings
    take their gradient. Returns the mean loss."""
    bids = scratch.ids[:B]
    n = stage_words(bids, params.E, cnet, tr)
    loss = steps.train_step(params, net, seed, step, hyper, adam, scratch, tr.pairs, B)
    if np.isfinite(loss):
        char_step(bids, params, hyper, step + 1, scratch, cnet, tr, n)
    clear_slots(tr.slot, tr.uniq, n)
    return loss


@njit(cache=True, fastmath=FAST, error_model="numpy")
def train_batches_chars(ids, feats, targets, order, batch, params, net, seed, step0, hyper, adam, scratch, cnet,
                        tr):
    """steps.train_batches with character vectors (char_train_step): the summed batch losses, or the first
    non-finite one."""
    total = 0.0
    N = order.shape[0]
    for k in range((N + batch - 1) // batch):
        s = k * batch
        e = min(s + batch, N)
        steps.stage_batch(ids, feats, targets, order, s, e, scratch)
        loss = char_train_step(params, net, seed, step0 + k, hyper, adam, scratch, cnet, tr, e - s)
        if not np.isfinite(loss):
            return loss
        total += loss * (e - s)
    return total


# ---------------------------------------------------------------- the model


def read_arrays(path: Path, prefix: str) -> dict[str, np.ndarray]:
    """The arrays of an npz file whose names start with `prefix`, reading no others and never unpickling."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files if k.startswith(prefix)}
    except (OSError, ValueError) as e:
        raise ModelFormatError(f"{path}: cannot read parameters ({e})") from e


class CharWindowMLP(WindowMLP):
    """A window MLP whose word rows end in a character vector: E is (V, word_dim + n_filters).

    The character parameters travel with the model's own (`params`, `to_arrays`, `set_params`), so model files
    and checkpoints hold them; the words' characters (`set_words`) come from the head, which owns the alphabet.
    """

    def __init__(self, config: MLPConfig, chars: CharConfig, seed: int = 0, E: np.ndarray | None = None,
                 F: np.ndarray | None = None):
        runtime.init()
        self.chars = chars
        self.word_dim = config.embed_dim - chars.n_filters
        if self.word_dim < 0:
            raise ModelFormatError(f"embed_dim {config.embed_dim} is smaller than char filters {chars.n_filters}")
        rng = np.random.default_rng([seed, 2])
        super().__init__(config, seed, E, F)
        self.char_theta = np.zeros(sum(int(np.prod(s)) for s in chars.shapes().values()), self.dtype)
        self._char_views: dict[str, np.ndarray] = {}
        off = 0
        for name, shape in chars.shapes().items():
            size = int(np.prod(shape))
            self._char_views[name] = self.char_theta[off : off + size].reshape(shape)
            off += size
        a = 0.5 * np.sqrt(3.0)  # std 0.5, as the word table's random rows
        self._char_views["char_E"][...] = rng.uniform(-a, a, size=(chars.n_chars, chars.char_dim))
        fan_in, fan_out = self._char_views["char_W"].shape
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        self._char_views["char_W"][...] = rng.uniform(-limit, limit, size=(fan_in, fan_out))
        self._P = np.zeros((chars.width, chars.n_chars, chars.n_filters), self.dtype)
        self.set_words(np.zeros(0, np.int32), np.zeros(1, np.int64))

    @classmethod
    def with_word_table(cls, config: MLPConfig, chars: CharConfig, seed: int, words: np.ndarray | None,
                        ) -> CharWindowMLP:
        """A model whose word part is `words` (V, word_dim) or random, its character columns still to fill."""
        E = None
        if words is not None:
            E = np.zeros((config.vocab_size, config.embed_dim), words.dtype)
            E[:, : words.shape[1]] = words
        return cls(config, chars, seed, E)

    @classmethod
    def from_model(cls, model: WindowMLP, chars: CharConfig, arrays: dict[str, np.ndarray]) -> CharWindowMLP:
        """The model a plain WindowMLP loaded from a file was (its tables taken, not copied), with the character
        parameters in `arrays`."""
        new = cls(model.config, chars, E=model.E, F=model.F)
        new.theta[...] = model.theta
        new.set_char_params(arrays)
        return new

    def set_words(self, chars: np.ndarray, offsets: np.ndarray) -> None:
        """The characters of the words whose vectors the kernels compute: padded ids, see CharNet."""
        self.char_net = CharNet(*self._char_views.values(), self.char_theta, np.ascontiguousarray(chars, np.int32),
                                np.ascontiguousarray(offsets, np.int64), self._P, self.word_dim)

    # ------------------------------------------------------------ parameters

    @property
    def params(self) -> dict[str, np.ndarray]:
        return {**super().params, **self._char_views}

    def flat_params(self) -> dict[str, np.ndarray]:
        return {**super().flat_params(), "char_theta": self.char_theta}

    def set_params(self, arrays: dict[str, np.ndarray]) -> None:
        super().set_params(arrays)
        self.set_char_params(arrays)

    def set_char_params(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy the character parameters (char_E, char_W, char_b) in, checking their shapes."""
        for name, shape in self.chars.shapes().items():
            if name not in arrays or tuple(arrays[name].shape) != shape:
                found = tuple(arrays[name].shape) if name in arrays else "missing"
                raise ModelFormatError(f"parameter {name} is {found}, expected {shape}")
            self._char_views[name][...] = arrays[name]

    def n_parameters(self) -> int:
        return super().n_parameters() - self.E.shape[0] * self.chars.n_filters + self.char_theta.size

    # ------------------------------------------------------------ character vectors

    def fill_vocabulary(self) -> None:
        """Every word's character columns of E from the current character parameters (after training steps,
        before the table is read)."""
        project(self.char_net)
        fill_all_rows(self.char_net, self.E)

    def word_vectors(self, chars: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The character vectors (n, nf) of any words given as padded character ids (see CharNet)."""
        n = offsets.shape[0] - 1
        net = self.char_net._replace(chars=np.ascontiguousarray(chars, np.int32),
                                     offsets=np.ascontiguousarray(offsets, np.int64), col0=0)
        out = np.zeros((n, self.chars.n_filters), self.dtype)
        project(net)
        fill_rows(net, np.arange(n, dtype=np.int32), n, out, np.zeros((n, self.chars.n_filters), np.int32))
        return out

    def char_grads(self, dC: np.ndarray) -> dict[str, np.ndarray]:
        """The character parameters' gradients given dC (V, nf) = dL/d(every word's character vector): the
        plain path that gradient checks and tests compare the fused training step against."""
        V, nf = self.config.vocab_size, self.chars.n_filters
        grad = np.zeros_like(self.char_theta)
        views, off = {}, 0
        for name, shape in self.chars.shapes().items():
            views[name] = grad[off : off + int(np.prod(shape))].reshape(shape)
            off += views[name].size
        rows = np.arange(V, dtype=np.int32)
        argmax = np.zeros((V, nf), np.int32)
        project(self.char_net)
        fill_rows(self.char_net, rows, V, np.zeros((V, self.word_dim + nf), self.dtype), argmax)
        backprop_words(self.char_net, rows, V, np.ascontiguousarray(dC, self.dtype), argmax, *views.values())
        return views

    def predict_log_proba_extra(self, ids: np.ndarray, feats: np.ndarray, extra: np.ndarray,
                                batch: int = 4096, method: str = "auto") -> np.ndarray:
        """predict_log_proba where ids >= V name rows of `extra` (n_extra, embed_dim): words the vocabulary lacks.
        With method "lookup" and the whole vocabulary's table, every window in one pass over that table extended
        by the unseen words' rows; otherwise windows without one take `method` and the others are computed on a
        table of just their rows."""
        V = self.config.vocab_size
        ids = np.ascontiguousarray(ids, np.int32)
        feats = np.ascontiguousarray(feats, np.int32)
        out = np.empty((ids.shape[0], self.config.n_out), self.dtype)
        touched = (ids >= V).any(axis=1)
        if touched.any() and method == "lookup":
            vocab = self.vocabulary_table(ids.size)
            if vocab is not None:
                self.check_ids(ids, feats, V + len(extra))
                self._lookup_extended(ids, feats, extra, vocab, out)
                return out
        plain = ~touched
        if plain.any():
            out[plain] = self.predict_log_proba(ids[plain], feats[plain], batch=batch, method=method)
        if touched.any():
            sub = np.zeros((int(touched.sum()), self.config.n_out), self.dtype)
            rows, local = np.unique(ids[touched], return_inverse=True)
            table = np.concatenate([self.E[rows[rows < V]], extra[rows[rows >= V] - V]]).astype(self.dtype)
            local = np.ascontiguousarray(local.reshape(-1, ids.shape[1]), np.int32)
            if method == "lookup":
                self._lookup_rows(table, local, feats[touched], self._transposed_theta(), sub)
            else:
                params = layers.Params(table, self.F, self.theta, self.sizes, self.weight_mask)
                scratch = self.scratch(min(batch, local.shape[0]))
                layers.predict_batches(local, feats[touched], params, self.kernel_net(False),
                                       min(batch, self._buf.capacity), scratch, sub)
                layers.log_softmax_rows(sub, sub)
            out[touched] = sub
        return out

    def _lookup_rows(self, table: np.ndarray, local: np.ndarray, feats: np.ndarray, WT: np.ndarray,
                     out: np.ndarray, T: np.ndarray | None = None, first: int = 0) -> None:
        """Log-probabilities of windows `local` (indices into T) by the lookup path, after computing T[first:]
        from the embedding rows `table` (T: a new table of just those rows if not given)."""
        c = self.config
        P, H0, n = c.n_positions, c.hidden[0], len(table)
        T = np.empty((n, P, H0), self.dtype) if T is None else T
        C = np.empty((P, c.n_features, H0 if c.feature_dim else 0), self.dtype)
        lookup.first_layer_tables(table, self.F, self._views["W0"], None, T[first : first + n], C)
        lookup.lookup_logits(local, feats, T, C, self.theta, WT, self.sizes, ACTIVATIONS[c.activation], True, out,
                             lookup.NO_EXTRA)

    def _lookup_extended(self, ids: np.ndarray, feats: np.ndarray, extra: np.ndarray, vocab, out: np.ndarray):
        """The lookup path of windows whose ids >= V name rows of `extra`: the whole vocabulary's table (kept,
        copied once into a bigger one) with the unseen words' rows computed after it, ids used as they are."""
        V = self.config.vocab_size
        kept = getattr(self, "_extended", None)
        if kept is None or kept[0] is not vocab or kept[1].shape[0] < V + len(extra):
            T = np.empty((V + max(len(extra), 4096), *vocab.T.shape[1:]), self.dtype)
            T[:V] = vocab.T
            self._extended = kept = (vocab, T)
        self._lookup_rows(extra.astype(self.dtype), ids, feats, vocab.WT, out, kept[1], V)

    # ------------------------------------------------------------ training

    def train_scratch(self, optimizer_state: dict[str, np.ndarray], adam: bool, batch: int) -> CharTrain:
        """The scratch of train_batches_chars; Adam's moments of the character parameters are kept in the
        optimiser's state (so checkpoints hold them) as char_m and char_v."""
        if adam and "char_m" not in optimizer_state:
            optimizer_state["char_m"] = np.zeros_like(self.char_theta)
            optimizer_state["char_v"] = np.zeros_like(self.char_theta)
        m = optimizer_state.get("char_m", np.zeros(1, self.dtype))
        v = optimizer_state.get("char_v", np.zeros(1, self.dtype))
        tr = getattr(self, "_char_train", None)
        cap = batch * self.config.n_positions
        if tr is None or tr.uniq.shape[0] < cap or tr.m is not m:
            grad = np.zeros_like(self.char_theta)
            views, off = [], 0
            for shape in self.chars.shapes().values():
                size = int(np.prod(shape))
                views.append(grad[off : off + size].reshape(shape))
                off += size
            nf = self.chars.n_filters
            tr = self._char_train = CharTrain(
                grad, *views, m, v, np.full(self.config.vocab_size, -1, np.int32), np.zeros(cap, np.int32),
                np.zeros((cap, nf), np.int32), np.zeros((cap, nf), self.dtype), self.pair_buffers(0))
        return tr


class CharOptimizer(Optimizer):
    """An Optimizer whose stretches of minibatches train a CharWindowMLP's character CNN too."""

    def _train_batches(self, model: CharWindowMLP, scratch: layers.Scratch, adam: AdamState, ids: np.ndarray,
                       feats: np.ndarray, targets: np.ndarray, order: np.ndarray, start: int, stop: int, batch: int,
                       seed: int) -> float:
        tr = model.train_scratch(self.state, self.name == "adam", batch)
        return train_batches_chars(ids, feats, targets, order[start:stop], batch, model.kernel_params,
                                   model.kernel_net(True), seed, self.steps, self._hyper(), adam, scratch,
                                   model.char_net, tr)

    def stage_words(self, model: CharWindowMLP, ids: np.ndarray) -> int:
        """Before a step taken outside train_batches (model.forward, then step): the character vectors of the
        words of windows `ids` from the current filters. Returns what finish_words takes."""
        self._state(model)  # Adam's moments of the MLP first, as train_batches makes them
        tr = model.train_scratch(self.state, self.name == "adam", ids.shape[0])
        return stage_words(ids, model.E, model.char_net, tr)

    def finish_words(self, model: CharWindowMLP, ids: np.ndarray, n: int) -> None:
        """After that step (its backprop and `step`): the character CNN's gradient from the step's dX, and its
        update (Adam step t = this optimiser's step count)."""
        tr = model._char_train
        char_step(ids, model.kernel_params, self._hyper(), self.steps, model.scratch(ids.shape[0]),
                  model.char_net, tr, n)
        clear_slots(tr.slot, tr.uniq, n)
