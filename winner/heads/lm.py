"""Fixed-window neural language model (Bengio, Ducharme, Vincent & Jauvin 2003) on the window-MLP core.

https://www.jmlr.org/papers/volume3/bengio03a/bengio03a.pdf: the next word is predicted from the n-1
words before it, y = b + W x + U tanh(d + H x), x the concatenated embeddings of those words, softmax
over the vocabulary. The core's MLP is exactly this with n_positions = n-1 and n_out = |V| (W = the
direct connections, optional; H, U = hidden layer(s), none when h = 0).

Streams. Each split is one stream and the splits are read as ONE continuous sequence (train, valid,
test): every token of a split is predicted, and the context of its first tokens is the end of the split
before it. Before the very start of a corpus (and of a free `--text` or a short prompt) the context is
the padding row: an input-only embedding row with id |V|, so the softmax stays over exactly |V| words.

The output is the full softmax over |V| or, with `--output classes`, the class-factored softmax of
heads/lm_output.py and core/classes.py (P(w | h) = P(class | h) P(w | class, h), as exactly normalised).

Perplexity is exact: a normalised distribution over |V| for every token, `<unk>` counted like any word, computed in
chunks of rows (200k x 16k logits do not fit in memory at once).

Generation never emits `<unk>` (its probability is set to 0 and the rest renormalised): it stands for
thousands of different rare words and reads as noise. `<text>` (the Brown start-of-document marker) is an
ordinary token and is printed as a paragraph break.

"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from winner.core.console import console
from winner.core.gradcheck import CaseReport, check
from winner.core.loop import (
    Epoch,
    LoopSettings,
    LoopState,
    Metric,
    TrainData,
    chance_loss,
    fit,
    train_windows_epoch,
    warm_up_windows,
    write_json,
)
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer
from winner.data import corpus as C
from winner.data.conll import read_text
from winner.data.corpus import brown_streams, read_text_corpus, tokenize
from winner.data.vocab import UNK, Vocab
from winner.errors import ModelFormatError, WinnerError
from winner.heads.lm_output import ClassOutput, FullOutput, class_loss_and_grad, output_layer, sampling_probs
from winner.heads.model_io import load_model_dir, resolve_model_dir, save_model_dir
from winner.heads.settings import LMSettings

KIND = "lm"
SPLITS = ("train", "valid", "test")
CHUNK = 1024  # windows per chunk of logits in perplexity: 1024 x 16,493 float32 = 68 MB
# Word vectors start small (std 0.05, not the core's 0.5): a word seen a few dozen times cannot move a
# large random vector far, so rare words would keep reading as noise (valid perplexity after one Brown
# epoch: 328 with 0.05, 381 with 0.5).
EMBED_INIT_STD = 0.05
UNIGRAM_PRIOR = 0.5  # added to every train count for the initial output biases (log unigram frequencies)
DOC_MARKER = "<text>"  # Brown's start-of-text token, printed as a paragraph break


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


def token_nll(model: WindowMLP, X: np.ndarray, y: np.ndarray, chunk: int = CHUNK,
              output: FullOutput | ClassOutput | None = None) -> np.ndarray:
    """-log p(y_i | X_i) for every window (float64), fully normalised over the vocabulary, chunk by chunk;
    `output` says how the scores make a distribution (default: one softmax over them)."""
    return (output or FullOutput(model.config.n_out)).token_nll(model, X, y, chunk)


def perplexity(model: WindowMLP, X: np.ndarray, y: np.ndarray, chunk: int = CHUNK,
               output: FullOutput | ClassOutput | None = None) -> float:
    """exp(mean negative log-likelihood) over every window."""
    if X.shape[0] == 0:
        raise WinnerError("no tokens to compute a perplexity on")
    return float(math.exp(token_nll(model, X, y, chunk, output).mean()))


# ---------------------------------------------------------------- the model


class LanguageModel:
    """A window MLP over the previous `context` words + the output vocabulary (+ one input padding row)."""

    def __init__(self, model: WindowMLP, vocab: Vocab, context: int, meta: dict | None = None,
                 output: FullOutput | ClassOutput | None = None):
        c = model.config
        self.output = output or FullOutput(len(vocab))
        if c.n_out != self.output.n_out or c.vocab_size != len(vocab) + 1 or c.n_positions != context:
            raise ModelFormatError(
                f"the network reads {c.n_positions} words from {c.vocab_size} input rows and scores {c.n_out}; "
                f"expected context={context}, |V|+1={len(vocab) + 1} rows (the last one padding), "
                f"{self.output.n_out} scores ({self.output.name} output over |V|={len(vocab)})")
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
               train_ids: np.ndarray | None = None, dtype: str = "float32", n_classes: int = 0) -> LanguageModel:
        """A fresh model; the output biases start at the log unigram frequencies of `train_ids`. n_classes > 0:
        the class-factored output with (at most) that many frequency-binned classes of the train counts.

        With h = 0 (no hidden layer) the output reads the embeddings directly: the core's first layer is then
        the direct connections W, so `direct` adds nothing and is ignored.
        """
        if context < 1:
            raise WinnerError(f"--context must be at least 1, got {context}")
        counts = UNIGRAM_PRIOR + (np.ones(len(vocab)) if train_ids is None else
                                  np.bincount(np.asarray(train_ids, dtype=np.int64), minlength=len(vocab)))
        output = ClassOutput.frequency_binned(counts, n_classes) if n_classes else FullOutput(len(vocab))
        config = MLPConfig(n_positions=context, vocab_size=len(vocab) + 1, embed_dim=embed_dim, n_out=output.n_out,
                           hidden=hidden, direct=direct and bool(hidden),
                           loss="none" if n_classes else "softmax", dropout_input=dropout,
                           dropout_hidden=hidden_dropout, dtype=dtype)
        rng = np.random.default_rng([seed, 1])
        E = rng.uniform(-1.0, 1.0, (len(vocab) + 1, embed_dim)) * (EMBED_INIT_STD * np.sqrt(3.0))
        model = WindowMLP(config, seed=seed, E=E)
        if train_ids is not None:
            # Starting from the unigram model saves the first part of an epoch that would learn just that.
            output.init_biases(model.params[f"b{len(hidden)}"], counts)
        return cls(model, vocab, context, output=output)

    # ------------------------------------------------------------ data

    def ids(self, tokens: list[str]) -> np.ndarray:
        return self.vocab.ids(tokens)

    def windows(self, ids: np.ndarray, history: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return lm_windows(ids, self.context, self.pad_id, history)

    def perplexity(self, ids: np.ndarray, history: np.ndarray | None = None) -> float:
        X, y = self.windows(ids, history)
        return perplexity(self.model, X, y, output=self.output)

    # ------------------------------------------------------------ generation

    def next_logits(self, history: list[int]) -> np.ndarray:
        """Scores (float64, (n_out,): |V| words, or the classes then the words) of the word after `history`
        (padded on the left when short)."""
        ctx = np.full(self.context, self.pad_id, dtype=np.int32)
        tail = history[-self.context:]
        if tail:
            ctx[self.context - len(tail):] = tail
        return self.model.predict_logits(ctx[None, :], batch=1)[0].astype(np.float64)

    def next_distribution(self, history: list[int], temperature: float = 1.0, top_k: int = 0) -> np.ndarray:
        """Sampling probabilities of the next word: `<unk>` excluded, temperature, top-k; sums to 1."""
        logits = self.next_logits(history)
        logits[self.vocab.unk_id] = -np.inf
        return sampling_probs(logits, temperature, top_k)

    def generate(self, prompt: list[str], n: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
                 ) -> list[str]:
        """`n` words after the (tokenised) prompt. Same seed, same words; temperature 0 is greedy. The factored
        output draws a class, then a word of it, both with the temperature and top-k."""
        if temperature < 0:
            raise WinnerError(f"--temperature must be >= 0, got {temperature}")
        rng = np.random.default_rng(seed)
        history = [int(i) for i in self.vocab.ids(prompt)]
        words: list[str] = []
        for _ in range(n):
            nxt = self.output.sample(self.next_logits(history), self.vocab.unk_id, temperature, top_k, rng)
            history.append(nxt)
            words.append(self.vocab.itos[nxt])
        return words

    # ------------------------------------------------------------ I/O

    def save(self, path: str | Path, meta: dict | None = None, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Write the model (or `arrays`, parameters of this model's shapes) with kind "lm"."""
        config = {"mlp": self.model.config_dict(), "lm": {"context": self.context, "tokenizer": "brown",
                                                            "padding_row": self.pad_id, "output": self.output.name},
                  "meta": {**self.meta, **(meta or {})}}
        arrays = self.model.to_arrays() if arrays is None else arrays
        save_model_dir(path, KIND, config, {**arrays, **self.output.arrays()}, self.vocab)

    @classmethod
    def load(cls, path: str | Path) -> LanguageModel:
        config, arrays, vocab = load_model_dir(path, KIND)
        try:
            mlp_config = MLPConfig(**config["mlp"])
            context = int(config["lm"]["context"])
            output_name = config["lm"].get("output", "full")  # models from before the factored output: full
            if output_name not in ("full", "classes"):
                raise ValueError(f"output {output_name!r}, expected full or classes")
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFormatError(f"{path}/config.json: not a valid language model config ({e})") from e
        if output_name == "classes" and "word_class" not in arrays:
            raise ModelFormatError(f"{path}/params.npz: a class-factored model without its word_class array")
        output = output_layer(output_name, len(vocab), arrays.get("word_class"))
        return cls(WindowMLP.from_arrays(mlp_config, arrays), vocab, context, config.get("meta", {}), output)


# ---------------------------------------------------------------- corpora


def load_corpus(corpus: str, min_count: int | None = None, max_vocab: int | None = None,
                ) -> tuple[dict[str, list[str]], Vocab]:
    """Token streams and vocabulary: "brown" = the shipped streams with the paper's vocabulary (frequency
    >= 4 over all splits), otherwise a plain-text file or directory with a vocabulary from train."""
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
        self.cols = lm.output.columns(np.flatnonzero(counts == 0))
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
    """Multiply the learning rate by `decay` after every epoch whose valid perplexity is not a new best (the
    loop decides that, and its checkpoint keeps the best score and the rate reached)."""

    def __init__(self, optimizer: Optimizer, decay: float):
        self.optimizer = optimizer
        self.decay = decay
        self.last_lr = optimizer.lr  # the rate the epoch just evaluated was trained with

    def update(self, improved: bool) -> None:
        self.last_lr = self.optimizer.lr
        if not improved and self.decay < 1.0:
            self.optimizer.lr *= self.decay
            console.print(f"valid perplexity did not improve: learning rate {self.last_lr:.3g} -> "
                          f"{self.optimizer.lr:.3g}")


class LMTraining:
    """The LM as a Trainee of the core's loop: shuffled windows, blank noise drawn per epoch, valid perplexity
    of the averaged weights with never-seen words' outputs held at their prior, the learning rate halved after
    an epoch without a gain."""

    def __init__(self, lm: LanguageModel, optimizer: Optimizer, data: TrainData, valid: tuple[np.ndarray, np.ndarray],
                 settings: LMSettings, unseen: UnseenOutputs, save: Callable[[LoopState, dict], None]):
        self.lm, self.model, self.optimizer, self.data = lm, lm.model, optimizer, data
        self.valid, self.settings, self.unseen, self.save = valid, settings, unseen, save
        self.metric = Metric("valid perplexity", higher_is_better=False, fmt="{:.2f}")
        self.chance_loss = chance_loss(self.model)
        self.noise = ContextNoise(data.ids, settings.word_noise, lm.vocab.unk_id, lm.pad_id, settings.seed)
        self.schedule = LRSchedule(optimizer, settings.lr_decay)
        self.evaluated: dict[str, np.ndarray] = {}  # the weights of the last evaluation: save_best writes these

    def warm_up(self) -> None:
        self.model.check_ids(self.data.ids, self.data.feats)
        warm_up_windows(self.model, self.optimizer, self.data, self.settings.batch_size)

    def train_epoch(self, epoch: int, quiet: bool) -> Epoch:
        self.noise.draw(epoch)
        s = self.settings
        return train_windows_epoch(self.model, self.optimizer, self.data, s.batch_size, s.seed, epoch, quiet)

    def evaluate(self) -> tuple[float, dict]:
        self.unseen.restore(self.model, self.optimizer)
        with self.model.use_params(self.optimizer.averaged()):
            self.unseen.restore(self.model, self.optimizer)
            ppl = perplexity(self.model, *self.valid, output=self.lm.output)
            self.evaluated = self.model.to_arrays()
        return ppl, {}

    def after_evaluation(self, epoch: int, improved: bool) -> None:
        self.schedule.update(improved)

    def save_best(self, state: LoopState) -> None:
        self.save(state, self.evaluated)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


MAX_UNK_SHARE = 0.5  # above this share of <unk> in train, perplexity mostly measures predicting <unk>


def train_lm(settings: LMSettings) -> dict:
    """Train on the corpus, early-stop on valid perplexity, keep the best model in OUT/model; the summary."""
    t_all = time.perf_counter()
    out = Path(settings.out)
    streams, vocab = load_corpus(settings.corpus, settings.min_count, settings.max_vocab)
    split_ids = {k: vocab.ids(v) for k, v in streams.items()}
    lm = LanguageModel.create(vocab, settings.context, settings.embed_dim, settings.hidden_sizes(), settings.direct,
                              settings.dropout, settings.hidden_dropout, settings.seed, split_ids["train"],
                              n_classes=settings.n_classes(len(vocab)))
    X, y = split_windows(split_ids, "train", settings.context, lm.pad_id)
    Xv, yv = split_windows(split_ids, "valid", settings.context, lm.pad_id)
    unk = {k: float(np.mean(v == vocab.unk_id)) for k, v in split_ids.items()}
    if unk["train"] > MAX_UNK_SHARE:
        raise WinnerError(f"{settings.corpus}: {100 * unk['train']:.1f}% of the training tokens are {UNK}; a model "
                          f"predicting {UNK} would measure nothing (raise --max-vocab or lower --min-count)")
    console.print(f"corpus {settings.corpus}: " + ", ".join(
        f"{k} {len(v):,} tokens ({100 * unk[k]:.2f}% {UNK})" for k, v in split_ids.items()) + f"; |V| = {len(vocab):,}")
    c = lm.model.config
    out_desc = f"{lm.output.n_classes} frequency-binned classes" if isinstance(lm.output, ClassOutput) else "full"
    console.print(f"model: context {settings.context}, embeddings {len(vocab):,}+1 x {settings.embed_dim}, hidden "
                  f"{c.hidden or 'none'}, direct {c.direct or not c.hidden}, output {out_desc}, "
                  f"{lm.model.n_parameters():,} parameters")

    # Adam's eps is raised from 1e-8: an output unit whose word never occurs in train gets a tiny but
    # steady gradient that Adam would normalise into full-size steps, pushing its probability to 0.
    optimizer = Optimizer(settings.optimizer, lr=settings.lr, l2=settings.l2, eps=settings.adam_eps,
                          average_windows=settings.average * len(y),
                          output_classes=lm.output.layout if isinstance(lm.output, ClassOutput) else None)
    meta = {"settings": asdict(settings), "corpus": settings.corpus, "vocab_size": len(vocab),
            "train_tokens": int(len(y)), "valid_tokens": int(len(yv))}

    def save(state: LoopState, arrays: dict[str, np.ndarray]) -> None:
        lm.save(out / "model", {**meta, "epoch": state.best_epoch, "valid_perplexity": state.best}, arrays)

    trainee = LMTraining(lm, optimizer, TrainData(X, np.zeros_like(X), y), (Xv, yv), settings,
                         UnseenOutputs(lm, split_ids["train"]), save)
    loop = LoopSettings.of(settings)
    result = fit(trainee, out, loop)
    s = result.state
    summary = {"best_valid_perplexity": s.best, **result.summary(settings.seed, out / "model"),
               "wall_seconds": time.perf_counter() - t_all, "train_tokens": int(len(y))}
    summary["median_tokens_per_s"] = summary.pop("median_windows_per_s")  # a window predicts one token
    write_json(out / "summary.json", summary)
    console.print(f"done: best valid perplexity {s.best:.2f} at epoch {s.best_epoch} of {s.epoch}; "
                  f"{result.seconds:.0f}s training (+{result.compile_seconds:.1f}s JIT), "
                  f"{summary['wall_seconds']:.0f}s in all; model in {out / 'model'}")
    return summary


# ---------------------------------------------------------------- applying a model


def corpus_split_ids(lm: LanguageModel) -> dict[str, np.ndarray]:
    """The splits of the corpus the model was trained on, as ids of the model's vocabulary (of any model with
    `meta` and `vocab`: the n-gram model too)."""
    corpus = lm.meta.get("corpus")
    if corpus is None:
        raise WinnerError("this model does not record its corpus; use --text PATH")
    if corpus == "brown":
        streams = brown_streams()
    else:
        streams = read_text_corpus(corpus)
    return {k: lm.vocab.ids(v) for k, v in streams.items()}


def evaluate_lm(model_dir: str | Path, split: str = "test", text: str | Path | None = None) -> dict:
    """{"perplexity", "tokens"} on a split of the training corpus (as one stream after the splits before
    it) or on a plain-text file (tokenised like the training text; its first words see padding)."""
    lm = LanguageModel.load(resolve_model_dir(model_dir))
    if text is not None:
        ids = lm.vocab.ids(tokenize(read_text(text), known=lm.vocab.stoi))
        X, y = lm.windows(ids)
    else:
        split_ids = corpus_split_ids(lm)
        if split not in split_ids:
            raise WinnerError(f"the corpus {lm.meta.get('corpus')} has no {split} split "
                              f"(it has {', '.join(split_ids)})")
        X, y = split_windows(split_ids, split, lm.context, lm.pad_id)
    return {"perplexity": perplexity(lm.model, X, y, output=lm.output), "tokens": int(len(y))}


def render(words: list[str]) -> str:
    """Tokens joined by spaces, a `<text>` marker shown as a paragraph break."""
    text = " ".join("\n\n" if w == DOC_MARKER else w for w in words)
    return "\n".join(line.strip() for line in text.split("\n"))


def generate_text(model_dir: str | Path, prompt: str, n: int = 50, temperature: float = 1.0, top_k: int = 0,
                  seed: int = 0) -> dict:
    """Tokenise the prompt like the training text, generate n words; the prompt's unknown words are listed."""
    lm = LanguageModel.load(resolve_model_dir(model_dir))
    tokens = tokenize(prompt, known=lm.vocab.stoi)
    words = lm.generate(tokens, n, temperature, top_k, seed)
    unknown = [t for t in tokens if t not in lm.vocab.stoi]
    return {"prompt_tokens": tokens, "unknown": unknown, "words": words, "text": render(tokens + words)}


# ---------------------------------------------------------------- gradient checks


def gradcheck_cases() -> list[CaseReport]:
    """LM-shaped float64 checks: loss = the mean NLL exactly as perplexity computes it (chunked), gradients
    from the core (through the class-factored loss for the factored cases). Windows come from a stream with
    a word repeated inside one context and padding at the start; with and without direct connections, h = 0,
    two hidden layers; full and class-factored outputs."""
    vocab = Vocab([UNK, *(f"w{i}" for i in range(8))])  # w6, w7 never occur: their rows must get 0
    stream = np.array([3, 3, 3, 1, 0, 2, 3, 5, 4, 4, 2, 1], dtype=np.int32)
    cases = [("lm n=4, h=5, direct", (5,), True, 0), ("lm n=4, h=5, no direct", (5,), False, 0),
             ("lm n=4, h=0 (output reads the embeddings)", (), False, 0),
             ("lm n=4, two hidden layers, direct", (6, 4), True, 0),
             ("lm classes n=4, h=5, direct", (5,), True, 3), ("lm classes n=4, h=5, no direct", (5,), False, 3),
             ("lm classes n=4, h=0", (), False, 3), ("lm classes n=4, two hidden layers, direct", (6, 4), True, 3)]
    reports = []
    for name, hidden, direct, n_classes in cases:
        lm = LanguageModel.create(vocab, 3, 2, hidden, direct, seed=len(reports), train_ids=stream,
                                  dtype="float64", n_classes=n_classes)
        X, y = lm.windows(stream)  # the first windows read padding; (3, 3, 3) repeats a word

        def loss_and_grad(lm=lm, X=X, y=y, name=name):
            if isinstance(lm.output, ClassOutput):
                core_loss, grads = class_loss_and_grad(lm.model, lm.output, X, y)
            else:
                core_loss, grads = lm.model.loss_and_grad(X, None, y)
            loss = float(token_nll(lm.model, X, y, chunk=5, output=lm.output).mean())
            if abs(loss - core_loss) > 1e-12 * max(1.0, abs(loss)):
                raise AssertionError(f"{name}: chunked NLL {loss!r} != training loss {core_loss!r}")
            return loss, grads

        reports.append(check(name, lm.model.params, loss_and_grad, {"E": np.unique(X)}))
    return reports
