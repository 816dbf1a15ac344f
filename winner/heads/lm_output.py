"""The language model's output layer: the full softmax over |V| or the class-factored one (core/classes.py).

`OutputLayer` is what the LM needs to know about either: how many scores the network produces, the
unigram start of its biases, which score columns belong to a word, the exact per-token NLL from the scores,
and how to sample the next word. The class partition is frequency-binned on the training counts and saved
with the model (params.npz "word_class"), so a loaded model scores with exactly the classes it was trained with.
"""

from __future__ import annotations

import math

import numpy as np

from winner.core import classes
from winner.core.mlp import WindowMLP


def sampling_probs(logits: np.ndarray, temperature: float, top_k: int) -> np.ndarray:
    """Probabilities from scores (entries -inf excluded): temperature, then the top k only; 0 = greedy."""
    logits = np.array(logits, dtype=np.float64)
    if temperature <= 0.0:  # greedy: all mass on the best
        p = np.zeros_like(logits)
        p[int(np.argmax(logits))] = 1.0
        return p
    logits = logits / temperature
    if 0 < top_k < len(logits):
        cut = np.partition(logits, -top_k)[-top_k]
        logits[logits < cut] = -np.inf
    p = np.exp(logits - logits.max())
    return p / p.sum()


def draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn from p by inverse CDF with one uniform draw: reproducible under a seed."""
    cdf = np.cumsum(p)
    i = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(p) - 1)
    while p[i] == 0.0:  # a draw landing exactly on a zero-probability edge
        i -= 1
    return i


class FullOutput:
    """One softmax over the whole vocabulary: score column w is word w."""

    name = "full"

    def __init__(self, n_words: int):
        self.n_words = n_words

    @property
    def n_out(self) -> int:
        return self.n_words

    def columns(self, words: np.ndarray) -> np.ndarray:
        return np.asarray(words, dtype=np.int64)

    def init_biases(self, b: np.ndarray, counts: np.ndarray) -> None:
        b[...] = np.log(counts / counts.sum())

    def nll(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """-log p(y_i) (float64) from the scores Z (b, |V|); Z is overwritten."""
        z_target = Z[np.arange(len(y)), y].astype(np.float64)
        mx = Z.max(axis=1)
        np.subtract(Z, mx[:, None], out=Z)
        np.exp(Z, out=Z)
        return mx.astype(np.float64) + np.log(Z.sum(axis=1, dtype=np.float64)) - z_target

    def token_nll(self, model: WindowMLP, X: np.ndarray, y: np.ndarray, chunk: int) -> np.ndarray:
        """-log p(y_i | X_i) (float64) of every window, from the full scores chunk by chunk."""
        out = np.empty(X.shape[0], dtype=np.float64)
        for s in range(0, X.shape[0], chunk):
            e = min(s + chunk, X.shape[0])
            out[s:e] = self.nll(model.predict_logits(X[s:e], batch=chunk), y[s:e])
        return out

    def sample(self, z: np.ndarray, unk_id: int, temperature: float, top_k: int, rng: np.random.Generator) -> int:
        logits = z.astype(np.float64)
        logits[unk_id] = -np.inf
        return draw(sampling_probs(logits, temperature, top_k), rng)

    def arrays(self) -> dict[str, np.ndarray]:
        return {}


class ClassOutput:
    """P(w | h) = P(c(w) | h) P(w | c(w), h), both softmaxes over the scores (C class columns, then the words
    class by class)."""

    name = "classes"

    def __init__(self, word_class: np.ndarray):
        self.layout = classes.layout_of(word_class)
        self.n_classes = int(self.layout.starts.shape[0] - 1)
        self.members = np.argsort(self.layout.word_col)  # the word of each column from C on

    @classmethod
    def frequency_binned(cls, counts: np.ndarray, n_classes: int) -> ClassOutput:
        return cls(classes.frequency_classes(counts, n_classes))

    @property
    def n_out(self) -> int:
        return int(self.layout.starts[-1])

    def columns(self, words: np.ndarray) -> np.ndarray:
        return self.layout.word_col[np.asarray(words, dtype=np.int64)]

    def init_biases(self, b: np.ndarray, counts: np.ndarray) -> None:
        """The unigram model exactly: log P(c) on the class columns, log P(w | c) on the words'."""
        wc = self.layout.word_class
        mass = np.bincount(wc, weights=counts, minlength=self.n_classes)
        b[: self.n_classes] = np.log(mass / mass.sum())
        b[self.layout.word_col] = np.log(counts / mass[wc])

    def nll(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        """-log p(y_i) from the full scores Z (b, C + V): the reference for token_nll."""
        out = np.empty(len(y), np.float64)
        classes.class_nll(Z, np.asarray(y, dtype=np.int64), self.layout, out)
        return out

    def token_nll(self, model: WindowMLP, X: np.ndarray, y: np.ndarray, chunk: int) -> np.ndarray:
        """-log p(y_i | X_i) (float64) of every window from the class scores and the target's class block only
        (classes.batch_nll), chunk by chunk."""
        X = np.ascontiguousarray(X, dtype=np.int32)
        y = np.ascontiguousarray(y, dtype=np.int64)
        feats = np.zeros_like(X)
        model.check_ids(X, feats)
        b = max(1, min(chunk, X.shape[0]))
        scratch = model.scratch(b)
        cs = classes.class_scratch(self.layout, b, classes.top_rows(model.sizes, model.config.direct), model.dtype)
        out = np.empty(X.shape[0], dtype=np.float64)
        params, net = model.kernel_params, model.kernel_net(False)
        for s in range(0, X.shape[0], b):
            e = min(s + b, X.shape[0])
            classes.batch_nll(X[s:e], feats[s:e], y[s:e], params, net, scratch, cs, self.layout, out[s:e])
        return out

    def sample(self, z: np.ndarray, unk_id: int, temperature: float, top_k: int, rng: np.random.Generator) -> int:
        """A class, then a word of it, each with the temperature and top-k; `<unk>` never: its probability is
        taken out of its class's (so a class of `<unk>` alone is never drawn) and out of the word draw."""
        C, lay = self.n_classes, self.layout
        z = z.astype(np.float64)
        cu = int(lay.word_class[unk_id])
        s, e = int(lay.starts[cu]), int(lay.starts[cu + 1])
        col = int(lay.word_col[unk_id])
        within = sampling_probs(z[s:e], temperature if temperature > 0 else 1.0, 0)[col - s]
        class_logits = z[:C].copy()
        class_logits[cu] = -np.inf if within >= 1.0 else class_logits[cu] + math.log1p(-within) * max(temperature,
                                                                                                        1e-300)
        c = draw(sampling_probs(class_logits, temperature, top_k), rng)
        s, e = int(lay.starts[c]), int(lay.starts[c + 1])
        word_logits = z[s:e].copy()
        if c == cu:
            word_logits[col - s] = -np.inf
        k = draw(sampling_probs(word_logits, temperature, top_k), rng)
        return int(self.members[s + k - C])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"word_class": self.layout.word_class}


def output_layer(name: str, n_words: int, word_class: np.ndarray | None = None) -> FullOutput | ClassOutput:
    """The output layer a saved model declares."""
    return FullOutput(n_words) if name == "full" else ClassOutput(word_class)


def class_loss_and_grad(model: WindowMLP, output: ClassOutput, X: np.ndarray, y: np.ndarray,
                        ) -> tuple[float, dict[str, np.ndarray]]:
    """Mean factored NLL of a batch and dense gradients of every parameter, from the full scores and the core's
    ordinary backward: the reference the gradient checks verify and class_step must equal."""
    Z, backprop = model.forward(X)
    dZ = np.zeros_like(Z)
    loss = classes.class_xent(Z, np.asarray(y, np.int64), output.layout, 1.0 / len(y), dZ) / len(y)
    g = backprop(dZ)
    grads = {"E": np.zeros_like(model.E), "F": np.zeros_like(model.F)}
    np.add.at(grads["E"], g.rows_E, g.G_E)
    off = 0
    for name, shape in model.config.param_shapes().items():
        if name not in grads:
            n = math.prod(shape)
            grads[name] = g.theta[off : off + n].reshape(shape).copy()
            off += n
    return float(loss), grads

