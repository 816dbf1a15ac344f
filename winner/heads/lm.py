"""Fixed-window neural language model (Bengio, Ducharme, Vincent & Jauvin 2003) on the window-MLP core.

https://www.jmlr.org/papers/volume3/bengio03a/bengio03a.pdf: the next word is predicted from the n-1
words before it, y = b + W x + U tanh(d + H x), x the concatenated embeddings of those words, softmax
over the vocabulary. The core's MLP is exactly this with n_positions = n-1 and n_out = |V| (W = the
direct connections, optional; H, U = hidden layer(s), none when h = 0).

Streams. Each split is one stream and the splits are read as ONE continuous sequence (train, valid,
test): every token of a split is predicted, and the context of its first tokens is the end of the split
before it. Before the very start of a corpus (and of a free `--text` or a short prompt) the context is
the padding row: an input-only embedding row with id |V|, so the softmax stays over exactly |V| words.

Perplexity is exact: full softmax over |V| for every token, `<unk>` counted like any word, computed in
chunks of rows (200k x 16k logits do not fit in memory at once).

Generation never emits `<unk>` (its probability is set to 0 and the rest renormalised): it stands for
thousands of different rare words and reads as noise. `<text>` (the Brown start-of-document marker) is an
ordinary token and is printed as a paragraph break.

The core (numba kernels, MLP, optimiser, training loop) is imported inside functions so that the CLI's
`--help` stays instant.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from winner.data.vocab import UNK, Vocab
from winner.errors import ModelFormatError, WinnerError
from winner.heads.model_io import resolve_model_dir

if TYPE_CHECKING:
    from winner.core.gradcheck import CaseReport
    from winner.core.mlp import WindowMLP
    from winner.core.optim import Optimizer

KIND = "lm"
SPLITS = ("train", "valid", "test")
CHUNK = 1024  # windows per chunk of logits in perplexity: 1024 x 16,493 float32 = 68 MB
# Word vectors start small (std 0.05, not the core's 0.5): a word seen a few dozen times cannot move a
# large random vector far, so rare words would keep reading as noise (valid perplexity after one Brown
# epoch: 328 with 0.05, 381 with 0.5).
EMBED_INIT_STD = 0.05
UNIGRAM_PRIOR = 0.5  # added to every train count for the initial output biases (log unigram frequencies)
DOC_MARKER = "<text>"  # Brown's start-of-text token, printed as a paragraph break


@dataclass
class LMSettings:
    """Everything `winner lm train` takes. The defaults are the Brown settings tuned on valid (seed 0, best valid
    perplexity and its epoch): h 200, batch 128, Adam 2e-3 -> 280.6 (2); h 100 -> 280.6 (3); h 200, batch 256,
    Adam 1e-3 -> 287.8 (2, stopped there); dropout 0.4 -> 287.8 (3); blank noising 0.15 -> 288.6 (2). Every
    setting overfits after its best epoch: the learning-rate decay and early stopping end the run there."""

    out: str = "runs/lm"
    corpus: str = "brown"  # "brown" (shipped, Bengio et al. setup) or a plain-text file / directory
    min_count: int | None = None  # plain-text corpora only; None = 2
    max_vocab: int | None = None  # plain-text corpora only; None = no limit
    context: int = 4  # n-1 words of history
    embed_dim: int = 100
    hidden: str = "200"  # hidden layer sizes, comma-separated; "0" = no hidden layer
    direct: bool = False
    epochs: int = 10
    patience: int = 3  # stop after this many epochs without a better valid perplexity
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 2e-3
    adam_eps: float = 1e-5  # Adam's epsilon; 1e-8 lets outputs of words unseen in train drift to p = 0
    lr_decay: float = 0.5  # multiply the learning rate by this after an epoch that does not improve valid
    average: float = 0.25  # time constant of the parameter average, in epochs (0 = evaluate the raw weights)
    word_noise: float = 0.0  # probability that a training context word reads as <unk>, drawn afresh each epoch
    dropout: float = 0.25  # on the input embeddings
    hidden_dropout: float = 0.25
    l2: float = 0.0
    seed: int = 0
    resume: bool = False
    quiet: bool = False

    def hidden_sizes(self) -> tuple[int, ...]:
        return parse_hidden(self.hidden)


def parse_hidden(spec: str | int) -> tuple[int, ...]:
    """'200' -> (200,), '400,100' -> (400, 100), '0' or '' -> () (no hidden layer)."""
    try:
        sizes = tuple(int(x) for x in str(spec).replace(" ", "").split(",") if x)
    except ValueError:
        raise WinnerError(f"--hidden expects sizes like 200 or 400,100, got {spec!r}") from None
    if sizes == (0,):
        return ()
    if any(h <= 0 for h in sizes):
        raise WinnerError(f"--hidden sizes must be positive (or a single 0 for none), got {spec!r}")
    return sizes


# ---------------------------------------------------------------- windows


def lm_windows(ids: np.ndarray, context: int, pad_id: int, history: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
    """(contexts (N, context) int32, targets (N,) int64): every token of `ids` with the words before it.

    The words before the stream are the last tokens of `history` (the stream before it), then pad_id
    where history runs out. No Python loop per token: a strided view over one padded array.
    """
    ids = np.asarray(ids, dtype=np.int32)
    lead = np.full(context, pad_id, dtype=np.int32)
    if history is not None and context > 0:
        tail = np.asarray(history, dtype=np.int32)[-context:]
        lead[context - len(tail):] = tail
    full = np.concatenate([lead, ids])
    X = np.ascontiguousarray(sliding_window_view(full[:-1], context)) if len(ids) else np.zeros((0, context),
                                                                                                 np.int32)
    return X, ids.astype(np.int64)


def split_windows(split_ids: dict[str, np.ndarray], split: str, context: int, pad_id: int,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Windows of one split, its history being the splits before it in train, valid, test order."""
    before = [split_ids[s] for s in SPLITS[: SPLITS.index(split)] if s in split_ids]
    history = np.concatenate(before) if before else None
    return lm_windows(split_ids[split], context, pad_id, history)


# ---------------------------------------------------------------- exact perplexity


def token_nll(model: WindowMLP, X: np.ndarray, y: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """-log p(y_i | X_i) for every window (float64), fully normalised over the vocabulary, chunk by chunk."""
    n = X.shape[0]
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        Z = model.predict_logits(X[s:e], batch=chunk)  # (b, |V|)
        rows = np.arange(e - s)
        z_target = Z[rows, y[s:e]].astype(np.float64)
        mx = Z.max(axis=1)
        np.subtract(Z, mx[:, None], out=Z)
        np.exp(Z, out=Z)
        out[s:e] = mx.astype(np.float64) + np.log(Z.sum(axis=1, dtype=np.float64)) - z_target
    return out


def perplexity(model: WindowMLP, X: np.ndarray, y: np.ndarray, chunk: int = CHUNK) -> float:
    """exp(mean negative log-likelihood) over every window."""
    if X.shape[0] == 0:
        raise WinnerError("no tokens to compute a perplexity on")
    return float(math.exp(token_nll(model, X, y, chunk).mean()))


# ---------------------------------------------------------------- the model


class LanguageModel:
    """A window MLP over the previous `context` words + the output vocabulary (+ one input padding row)."""

    def __init__(self, model: WindowMLP, vocab: Vocab, context: int, meta: dict | None = None):
        c = model.config
        if c.n_out != len(vocab) or c.vocab_size != len(vocab) + 1 or c.n_positions != context:
            raise ModelFormatError(
                f"the network reads {c.n_positions} words from {c.vocab_size} input rows and scores {c.n_out}; "
                f"expected context={context}, |V|+1={len(vocab) + 1} rows (the last one padding), |V|={len(vocab)}")
        if vocab.unk_id is None:
            raise ModelFormatError(f"the vocabulary has no {UNK}")
        self.model = model
        self.vocab = vocab
        self.context = context
        self.meta = meta or {}

    @property
    def pad_id(self) -> int:
        return len(self.vocab)

    @classmethod
    def create(cls, vocab: Vocab, context: int, embed_dim: int, hidden: tuple[int, ...], direct: bool,
               dropout: float = 0.0, hidden_dropout: float = 0.0, seed: int = 0,
               train_ids: np.ndarray | None = None, dtype: str = "float32") -> LanguageModel:
        """A fresh model; the output biases start at the log unigram frequencies of `train_ids`.

        With h = 0 (no hidden layer) the output reads the embeddings directly: the core's first layer is then
        the direct connections W, so `direct` adds nothing and is ignored.
        """
        from winner.core.mlp import MLPConfig, WindowMLP

        if context < 1:
            raise WinnerError(f"--context must be at least 1, got {context}")
        config = MLPConfig(n_positions=context, vocab_size=len(vocab) + 1, embed_dim=embed_dim, n_out=len(vocab),
                           hidden=hidden, direct=direct and bool(hidden), loss="softmax", dropout_input=dropout,
                           dropout_hidden=hidden_dropout, dtype=dtype)
        rng = np.random.default_rng([seed, 1])
        E = rng.uniform(-1.0, 1.0, (len(vocab) + 1, embed_dim)) * (EMBED_INIT_STD * np.sqrt(3.0))
        model = WindowMLP(config, seed=seed, E=E)
        if train_ids is not None:
            # Starting from the unigram model saves the first part of an epoch that would learn just that.
            counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=len(vocab)) + UNIGRAM_PRIOR
            model.params[f"b{len(hidden)}"][...] = np.log(counts / counts.sum())
        return cls(model, vocab, context)

    # ------------------------------------------------------------ data

    def ids(self, tokens: list[str]) -> np.ndarray:
        return self.vocab.ids(tokens)

    def windows(self, ids: np.ndarray, history: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return lm_windows(ids, self.context, self.pad_id, history)

    def perplexity(self, ids: np.ndarray, history: np.ndarray | None = None) -> float:
        X, y = self.windows(ids, history)
        return perplexity(self.model, X, y)

    # ------------------------------------------------------------ generation

    def next_logits(self, history: list[int]) -> np.ndarray:
        """Scores (float64, (|V|,)) of the word after `history` (padded on the left when short)."""
        ctx = np.full(self.context, self.pad_id, dtype=np.int32)
        tail = history[-self.context:]
        if tail:
            ctx[self.context - len(tail):] = tail
        return self.model.predict_logits(ctx[None, :], batch=1)[0].astype(np.float64)

    def next_distribution(self, history: list[int], temperature: float = 1.0, top_k: int = 0) -> np.ndarray:
        """Sampling probabilities of the next word: `<unk>` excluded, temperature, top-k; sums to 1."""
        logits = self.next_logits(history)
        logits[self.vocab.unk_id] = -np.inf
        if temperature <= 0.0:  # greedy: all mass on the best word
            p = np.zeros_like(logits)
            p[int(np.argmax(logits))] = 1.0
            return p
        logits = logits / temperature
        if 0 < top_k < len(logits):
            cut = np.partition(logits, -top_k)[-top_k]
            logits[logits < cut] = -np.inf
        p = np.exp(logits - logits.max())
        return p / p.sum()

    def generate(self, prompt: list[str], n: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
                 ) -> list[str]:
        """`n` words after the (tokenised) prompt. Same seed, same words; temperature 0 is greedy."""
        if temperature < 0:
            raise WinnerError(f"--temperature must be >= 0, got {temperature}")
        rng = np.random.default_rng(seed)
        history = [int(i) for i in self.vocab.ids(prompt)]
        words: list[str] = []
        for _ in range(n):
            p = self.next_distribution(history, temperature, top_k)
            if temperature <= 0.0:
                nxt = int(np.argmax(p))
            else:  # inverse CDF with one uniform draw per word: reproducible under a seed
                cdf = np.cumsum(p)
                nxt = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(p) - 1)
                while p[nxt] == 0.0:  # a draw landing exactly on a zero-probability edge
                    nxt -= 1
            history.append(nxt)
            words.append(self.vocab.itos[nxt])
        return words

    # ------------------------------------------------------------ I/O

    def save(self, path: str | Path, meta: dict | None = None, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Write the model (or `arrays`, parameters of this model's shapes) with kind "lm"."""
        from winner.heads.model_io import save_model_dir

        config = {"mlp": self.model.config_dict(), "lm": {"context": self.context, "tokenizer": "brown",
                                                            "padding_row": self.pad_id},
                  "meta": {**self.meta, **(meta or {})}}
        save_model_dir(path, KIND, config, self.model.to_arrays() if arrays is None else arrays, self.vocab)

    @classmethod
    def load(cls, path: str | Path) -> LanguageModel:
        from winner.core.mlp import MLPConfig, WindowMLP
        from winner.heads.model_io import load_model_dir

        config, arrays, vocab = load_model_dir(path, KIND)
        try:
            mlp_config = MLPConfig(**config["mlp"])
            context = int(config["lm"]["context"])
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFormatError(f"{path}/config.json: not a valid language model config ({e})") from e
        return cls(WindowMLP.from_arrays(mlp_config, arrays), vocab, context, config.get("meta", {}))


# ---------------------------------------------------------------- corpora


def load_corpus(corpus: str, min_count: int | None = None, max_vocab: int | None = None,
                ) -> tuple[dict[str, list[str]], Vocab]:
    """Token streams and vocabulary: "brown" = the shipped streams with the paper's vocabulary (frequency
    >= 4 over all splits), otherwise a plain-text file or directory with a vocabulary from train."""
    from winner.data import corpus as C

    if corpus == "brown":
        if min_count is not None or max_vocab is not None:
            raise WinnerError("--min-count and --max-vocab apply to plain-text corpora; the Brown vocabulary is "
                              "fixed by the paper's rule (frequency >= 4 over the whole stream, |V| = 16,493)")
        streams = C.brown_streams()
        return streams, C.brown_vocab(streams)
    if not Path(corpus).exists():
        raise WinnerError(f"--corpus {corpus}: expected 'brown' or an existing file or directory")
    streams = C.read_text_corpus(corpus)
    vocab = C.text_vocab(streams["train"], 2 if min_count is None else min_count, max_vocab)
    return streams, vocab


# ---------------------------------------------------------------- training


class UnseenOutputs:
    """Output units of words that never occur in train keep their initial parameters.

    Nothing in train speaks for such a word (the Brown vocabulary has 701: it counts frequency over all
    splits), so maximum likelihood only ever pushes its probability towards 0, and Adam does so at full
    speed. Their output weights, bias (and direct connections) are put back to the initial values, the
    add-1/2 unigram prior, before every evaluation, so every saved model has them there.
    """

    def __init__(self, lm: LanguageModel, train_ids: np.ndarray):
        counts = np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=len(lm.vocab))
        self.cols = np.flatnonzero(counts == 0)
        model = lm.model
        last = len(model.config.hidden)
        self.names = [f"W{last}", f"b{last}"] + (["D"] if model.config.direct else [])
        self.saved = {name: model.params[name][..., self.cols].copy() for name in self.names}

    def restore(self, model: WindowMLP, optimizer: Optimizer) -> None:
        for name in self.names:
            view = model.params[name]
            view[..., self.cols] = self.saved[name]
            off = (view.__array_interface__["data"][0] - model.theta.__array_interface__["data"][0])
            off //= model.theta.itemsize
            for key in ("m", "v"):  # Adam's moments for these entries start again from zero
                state = optimizer.state.get(key)
                if state is not None and state.shape == model.theta.shape:
                    state[off : off + view.size].reshape(view.shape)[..., self.cols] = 0.0


def averaging_optimizer(optimizer: Optimizer, epochs: float, epoch_windows: int) -> Optimizer:
    """`optimizer` that also keeps an exponential moving average of the parameters (theta and E).

    Adam at a useful learning rate leaves the weights jittering around a good point; the average of the
    recent iterates sits closer to it (Polyak & Juditsky 1992, here in EMA form). The average is updated
    after every stretch of minibatches that fit() trains, with a time constant of `epochs` epochs, and
    lives in the optimiser's state dict, so checkpoints and --resume keep it. Evaluation and the saved
    model use it (`ParameterAverage`); training continues from the raw weights.
    """
    cls = _averaging_class()
    return cls(**{f.name: getattr(optimizer, f.name) for f in fields(optimizer)},
               average_windows=epochs * epoch_windows)


@cache
def _averaging_class():
    from winner.core.optim import Optimizer  # the core is imported lazily (see the module docstring)

    @dataclass
    class AveragingOptimizer(Optimizer):
        average_windows: float = 0.0

        def train_batches(self, model, ids, feats, targets, order, start, stop, batch, seed) -> float:
            total = super().train_batches(model, ids, feats, targets, order, start, stop, batch, seed)
            if self.average_windows > 0 and math.isfinite(total):
                rate = 1.0 - math.exp(-(stop - start) / self.average_windows)
                for key, current in (("avg_theta", model.theta), ("avg_E", model.E)):
                    avg = self.state.get(key)
                    if avg is None:
                        self.state[key] = current.copy()
                    else:  # avg += rate * (current - avg), without temporaries
                        avg *= 1.0 - rate
                        avg += rate * current
            return total

    return AveragingOptimizer


class ParameterAverage:
    """Swap the optimiser's parameter average into the model and back (a no-op without an average)."""

    def __init__(self, model: WindowMLP, optimizer: Optimizer):
        self.model = model
        self.optimizer = optimizer

    @contextmanager
    def applied(self) -> Iterator[None]:
        pairs = [(self.model.theta, self.optimizer.state.get("avg_theta")),
                 (self.model.E, self.optimizer.state.get("avg_E"))]
        pairs = [(current, avg) for current, avg in pairs if avg is not None]
        saved = [current.copy() for current, _ in pairs]
        for current, avg in pairs:
            current[...] = avg
        try:
            yield
        finally:
            for (current, _), raw in zip(pairs, saved, strict=True):
                current[...] = raw


class ContextNoise:
    """Blank noising of the training contexts (Xie et al. 2017, https://arxiv.org/abs/1703.02573).

    Before every epoch each context word is replaced by `<unk>` with probability p (padding stays), drawn
    afresh from (seed, epoch): like the back-off of an n-gram model, the network learns to predict from
    partial contexts, and `<unk>` learns to stand for any word. The arrays are changed in place, because
    fit() holds them.
    """

    def __init__(self, X: np.ndarray, p: float, unk_id: int, pad_id: int, seed: int):
        self.X = X
        self.clean = X.copy()
        self.p = p
        self.unk_id = unk_id
        self.pad_id = pad_id
        self.seed = seed

    def draw(self, epoch: int) -> None:
        """Noise for epoch `epoch` (1-based)."""
        self.X[...] = self.clean
        if self.p > 0.0:
            hit = np.random.default_rng([self.seed, epoch, 7]).random(self.X.shape) < self.p
            self.X[hit & (self.clean != self.pad_id)] = self.unk_id


class LRSchedule:
    """Multiply the learning rate by `decay` after every epoch whose valid perplexity is not a new best."""

    def __init__(self, optimizer: Optimizer, decay: float):
        self.optimizer = optimizer
        self.decay = decay
        self.best: float | None = None
        self.last_lr = optimizer.lr  # the rate the epoch just evaluated was trained with
        self.history: list[float] = []  # valid perplexities seen in this process

    def update(self, valid_ppl: float) -> None:
        from winner.core.console import console

        self.history.append(valid_ppl)
        self.last_lr = self.optimizer.lr
        if self.best is None or valid_ppl < self.best:
            self.best = valid_ppl
        elif self.decay < 1.0:
            self.optimizer.lr *= self.decay
            console.print(f"valid perplexity did not improve: learning rate {self.last_lr:.3g} -> "
                          f"{self.optimizer.lr:.3g}")


def train_lm(settings: LMSettings) -> dict:
    """Train on the corpus, early-stop on valid perplexity, keep the best model in OUT/model; the summary."""
    from winner.core.console import console
    from winner.core.loop import LoopSettings, LoopState, Metric, TrainData, fit, write_json
    from winner.core.optim import Optimizer

    t_all = time.perf_counter()
    out = Path(settings.out)
    streams, vocab = load_corpus(settings.corpus, settings.min_count, settings.max_vocab)
    split_ids = {k: vocab.ids(v) for k, v in streams.items()}
    lm = LanguageModel.create(vocab, settings.context, settings.embed_dim, settings.hidden_sizes(), settings.direct,
                              settings.dropout, settings.hidden_dropout, settings.seed, split_ids["train"])
    X, y = split_windows(split_ids, "train", settings.context, lm.pad_id)
    Xv, yv = split_windows(split_ids, "valid", settings.context, lm.pad_id)
    unk = {k: float(np.mean(v == vocab.unk_id)) for k, v in split_ids.items()}
    console.print(f"corpus {settings.corpus}: " + ", ".join(
        f"{k} {len(v):,} tokens ({100 * unk[k]:.2f}% {UNK})" for k, v in split_ids.items()) + f"; |V| = {len(vocab):,}")
    c = lm.model.config
    console.print(f"model: context {settings.context}, embeddings {len(vocab):,}+1 x {settings.embed_dim}, hidden "
                  f"{c.hidden or 'none'}, direct {c.direct or not c.hidden}, {lm.model.n_parameters():,} parameters")

    # Adam's eps is raised from 1e-8: an output unit whose word never occurs in train gets a tiny but
    # steady gradient that Adam would normalise into full-size steps, pushing its probability to 0.
    optimizer = Optimizer(settings.optimizer, lr=settings.lr, l2=settings.l2, eps=settings.adam_eps)
    if settings.average > 0:
        optimizer = averaging_optimizer(optimizer, settings.average, len(y))
    schedule = LRSchedule(optimizer, settings.lr_decay)
    epochs_done = _restore_lr(out, optimizer, schedule) if settings.resume else 0
    data = TrainData(X, np.zeros_like(X), y)
    noise = ContextNoise(data.ids, settings.word_noise, vocab.unk_id, lm.pad_id, settings.seed)
    noise.draw(epochs_done + 1)

    unseen = UnseenOutputs(lm, split_ids["train"])

    average = ParameterAverage(lm.model, optimizer)
    evaluated: dict[str, np.ndarray] = {}  # the weights of the last evaluation: save_best writes these

    def evaluate() -> float:
        unseen.restore(lm.model, optimizer)
        with average.applied():
            unseen.restore(lm.model, optimizer)
            ppl = perplexity(lm.model, Xv, yv)
            evaluated.update(lm.model.to_arrays())
        schedule.update(ppl)
        noise.draw(len(schedule.history) + epochs_done + 1)  # the data of the next epoch
        return ppl

    meta = {"settings": asdict(settings), "corpus": settings.corpus, "vocab_size": len(vocab),
            "train_tokens": int(len(y)), "valid_tokens": int(len(yv))}

    def save_best(state: LoopState) -> None:
        lm.save(out / "model", {**meta, "epoch": state.best_epoch, "valid_perplexity": state.best}, evaluated)

    loop = LoopSettings(settings.epochs, settings.batch_size, settings.patience, settings.seed, settings.resume,
                        settings.quiet)
    result = fit(lm.model, optimizer, data, evaluate,
                 Metric("valid perplexity", higher_is_better=False, fmt="{:.2f}"), save_best, out, loop,
                 extra_log=lambda: {"lr": schedule.last_lr, "next_lr": optimizer.lr})
    s = result.state
    speeds = [h["windows_per_s"] for h in s.history]
    summary = {"best_valid_perplexity": s.best, "best_epoch": s.best_epoch, "epochs_run": s.epoch,
               "stopped_early": result.stopped_early, "train_seconds": result.seconds,
               "compile_seconds": result.compile_seconds, "wall_seconds": time.perf_counter() - t_all,
               "train_tokens": int(len(y)), "median_tokens_per_s": float(np.median(speeds)) if speeds else None,
               "seed": settings.seed, "model": str(out / "model")}
    write_json(out / "summary.json", summary)
    console.print(f"done: best valid perplexity {s.best:.2f} at epoch {s.best_epoch} of {s.epoch}; "
                  f"{result.seconds:.0f}s training (+{result.compile_seconds:.1f}s JIT), "
                  f"{summary['wall_seconds']:.0f}s in all; model in {out / 'model'}")
    return summary


def _restore_lr(out: Path, optimizer: Optimizer, schedule: LRSchedule) -> int:
    """On --resume, continue with the learning rate the schedule had reached (from metrics.jsonl);
    returns the number of epochs already done."""
    path = out / "metrics.jsonl"
    if not path.is_file() or not (out / "checkpoint").is_dir():
        return 0
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        return 0
    optimizer.lr = float(records[-1].get("next_lr", optimizer.lr))
    schedule.best = min(r["valid perplexity"] for r in records)
    return int(records[-1]["epoch"])


# ---------------------------------------------------------------- applying a model


def corpus_split_ids(lm: LanguageModel) -> dict[str, np.ndarray]:
    """The splits of the corpus the model was trained on, as ids of the model's vocabulary."""
    corpus = lm.meta.get("corpus")
    if corpus is None:
        raise WinnerError("this model does not record its corpus; use --text PATH")
    if corpus == "brown":
        from winner.data.corpus import brown_streams

        streams = brown_streams()
    else:
        from winner.data.corpus import read_text_corpus

        streams = read_text_corpus(corpus)
    return {k: lm.vocab.ids(v) for k, v in streams.items()}


def evaluate_lm(model_dir: str | Path, split: str = "test", text: str | Path | None = None) -> dict:
    """{"perplexity", "tokens"} on a split of the training corpus (as one stream after the splits before
    it) or on a plain-text file (tokenised like the training text; its first words see padding)."""
    lm = LanguageModel.load(resolve_model_dir(model_dir))
    if text is not None:
        from winner.data.conll import read_text
        from winner.data.corpus import tokenize

        ids = lm.vocab.ids(tokenize(read_text(text), known=lm.vocab.stoi))
        X, y = lm.windows(ids)
    else:
        split_ids = corpus_split_ids(lm)
        if split not in split_ids:
            raise WinnerError(f"the corpus {lm.meta.get('corpus')} has no {split} split "
                              f"(it has {', '.join(split_ids)})")
        X, y = split_windows(split_ids, split, lm.context, lm.pad_id)
    return {"perplexity": perplexity(lm.model, X, y), "tokens": int(len(y))}


def render(words: list[str]) -> str:
    """Tokens joined by spaces, a `<text>` marker shown as a paragraph break."""
    text = " ".join("\n\n" if w == DOC_MARKER else w for w in words)
    return "\n".join(line.strip() for line in text.split("\n"))


def generate_text(model_dir: str | Path, prompt: str, n: int = 50, temperature: float = 1.0, top_k: int = 0,
                  seed: int = 0) -> dict:
    """Tokenise the prompt like the training text, generate n words; the prompt's unknown words are listed."""
    from winner.data.corpus import tokenize

    lm = LanguageModel.load(resolve_model_dir(model_dir))
    tokens = tokenize(prompt, known=lm.vocab.stoi)
    words = lm.generate(tokens, n, temperature, top_k, seed)
    unknown = [t for t in tokens if t not in lm.vocab.stoi]
    return {"prompt_tokens": tokens, "unknown": unknown, "words": words, "text": render(tokens + words)}


# ---------------------------------------------------------------- gradient checks


def gradcheck_cases() -> list[CaseReport]:
    """LM-shaped float64 checks: loss = the mean NLL exactly as perplexity computes it (chunked), gradients
    from the core. Windows come from a stream with a word repeated inside one context and padding at the
    start; with and without direct connections, h = 0, two hidden layers."""
    from winner.core.gradcheck import check

    vocab = Vocab([UNK, *(f"w{i}" for i in range(8))])  # w6, w7 never occur: their rows must get 0
    stream = np.array([3, 3, 3, 1, 0, 2, 3, 5, 4, 4, 2, 1], dtype=np.int32)
    cases = [("lm n=4, h=5, direct", (5,), True), ("lm n=4, h=5, no direct", (5,), False),
             ("lm n=4, h=0 (output reads the embeddings)", (), False), ("lm n=4, two hidden layers, direct",
                                                                        (6, 4), True)]
    reports = []
    for name, hidden, direct in cases:
        lm = LanguageModel.create(vocab, 3, 2, hidden, direct, seed=len(reports), train_ids=stream,
                                  dtype="float64")
        X, y = lm.windows(stream)  # the first windows read padding; (3, 3, 3) repeats a word

        def loss_and_grad(lm=lm, X=X, y=y, name=name):
            core_loss, grads = lm.model.loss_and_grad(X, None, y)
            loss = float(token_nll(lm.model, X, y, chunk=5).mean())
            if abs(loss - core_loss) > 1e-12 * max(1.0, abs(loss)):
                raise AssertionError(f"{name}: chunked NLL {loss!r} != training loss {core_loss!r}")
            return loss, grads

        reports.append(check(name, lm.model.params, loss_and_grad, {"E": np.unique(X)}))
    return reports
