"""The tagger's character windows on the head side: the alphabet, words as padded character ids, and the rows of
words the vocabulary does not have (their character vector computed on the fly, beside `<unk>`'s word part).

The kernels and the model are in winner.core.chars. Characters are read from the words' lookup form (lowercase,
digits as 0, see winner.data.windows.normalise), so a word's character vector is a function of its vocabulary
row: the casing feature carries the case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from winner.core.chars import CHAR_PAD, CHAR_UNKNOWN, MAX_WORD_CHARS, CharConfig, CharWindowMLP
from winner.core.gradcheck import check
from winner.core.mlp import MLPConfig
from winner.data.vectorised import lookup_ids, normalised_forms
from winner.data.vocab import PAD, Vocab
from winner.data.windows import CASING_VOCAB, flat_casing_ids, flat_windows, normalise


@dataclass
class CharSpec:
    """The character CNN's settings and alphabet, as saved in the tagger's config.json."""

    alphabet: str  # character ids 2, 3, ... in order; others are CHAR_UNKNOWN
    char_dim: int
    filters: int
    width: int

    def config(self) -> CharConfig:
        return CharConfig(len(self.alphabet) + 2, self.char_dim, self.filters, self.width)

    def encode(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(chars, offsets): each word's character ids (cut at MAX_WORD_CHARS) with width // 2 pads on each side,
        one word after another; word i's are chars[offsets[i]:offsets[i+1]]."""
        words = [w[:MAX_WORD_CHARS] for w in words]
        lengths = np.fromiter((len(w) for w in words), np.int64, count=len(words))
        pad = self.width // 2
        offsets = np.zeros(len(words) + 1, np.int64)
        np.cumsum(lengths + 2 * pad, out=offsets[1:])
        codes = np.frombuffer("".join(words).encode("utf-32-le"), dtype=np.uint32)
        known = np.frombuffer(self.alphabet.encode("utf-32-le"), dtype=np.uint32)
        order = np.argsort(known)
        at = np.minimum(np.searchsorted(known[order], codes), max(len(known) - 1, 0))
        found = known[order][at] == codes if len(known) else np.zeros(len(codes), bool)
        ids = np.where(found, order[at] + 2, CHAR_UNKNOWN).astype(np.int32)
        chars = np.full(int(offsets[-1]), CHAR_PAD, np.int32)
        starts = np.repeat(offsets[:-1] + pad - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        chars[starts + np.arange(len(codes))] = ids
        return chars, offsets


def build_alphabet(sentences: Sequence[Sequence[str]], min_count: int = 2) -> str:
    """The characters of the training words' lookup forms seen at least min_count times, most frequent first."""
    counts = Counter(ch for s in sentences for w in s for ch in normalise(w))
    return "".join(ch for ch, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count)


def attach_words(model: CharWindowMLP, spec: CharSpec, words: Vocab) -> None:
    """Give the model every vocabulary word's characters and fill E's character columns (for training)."""
    model.set_words(*spec.encode(words.itos))
    model.fill_vocabulary()


def char_log_proba(model: CharWindowMLP, spec: CharSpec, words: Vocab, sentences: Sequence[Sequence[str]],
                   half_width: int, method: str = "auto") -> np.ndarray:
    """Log-probabilities of every token's tags (windows from char_windows); the windows holding no word the
    vocabulary lacks take `method` (as in WindowMLP.predict_logits)."""
    ids, feats, rows = char_windows(model, spec, words, sentences, half_width)
    return model.predict_log_proba_extra(ids, feats, rows, method=method)


def char_windows(model: CharWindowMLP, spec: CharSpec, words: Vocab, sentences: Sequence[Sequence[str]],
                 half_width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, feats, rows): every token's window, ids >= V naming rows[id - V]. A word the vocabulary lacks reads as
    `<unk>`'s word vector beside its own character vector, computed here; every other word's is already in E."""
    tokens = list(chain.from_iterable(sentences))
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    forms = normalised_forms(tokens)
    if forms is None:  # a token holding a newline: token by token
        forms = [normalise(w) for w in tokens]
    found = lookup_ids(forms, words.stoi, None)
    extra: dict[str, int] = {}
    if None in found:
        V = len(words)
        found = [k if k is not None else extra.setdefault(w, V + len(extra))
                 for k, w in zip(found, forms, strict=True)]
    ids = flat_windows(np.asarray(found, dtype=np.int32), lengths, half_width, words.pad_id or 0)
    feats = flat_windows(flat_casing_ids(tokens), lengths, half_width, CASING_VOCAB.stoi[PAD])
    rows = np.zeros((len(extra), model.config.embed_dim), model.dtype)
    if extra:
        unk = words.unk_id if words.unk_id is not None else 0
        rows[:, : model.word_dim] = model.E[unk, : model.word_dim]
        rows[:, model.word_dim :] = model.word_vectors(*spec.encode(list(extra)))
    return ids, feats, rows


# ---------------------------------------------------------------- gradient checks


def gradcheck_cases() -> list:
    """The character CNN's parameters (and W0 beside them) through the tagger's whole loss, in float64: every
    word's character vector recomputed from the perturbed parameters, then the window MLP's loss."""
    return [_char_case("tagger with character windows, width 3", 3, train=False, seed=0),
            _char_case("tagger with character windows, width 5, input dropout", 5, train=True, seed=1)]


def _char_case(name: str, width: int, train: bool, seed: int):
    words = Vocab(["<pad>", "<unk>", "paris", "a", "london", "ab0", "zz-top", "unused"])
    spec = CharSpec("abdilnoprstz0", 3, 4, width)  # 'u', 'e' and '-' are unknown characters
    config = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=2 + spec.filters, n_out=4, hidden=(5,),
                       n_features=3, feature_dim=2, dropout_input=0.3 if train else 0.0, dtype="float64")
    model = CharWindowMLP(config, spec.config(), seed=seed)
    attach_words(model, spec, words)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(words) - 1, size=(4, 3)).astype(np.int32)
    feats = rng.integers(0, 3, size=(4, 3)).astype(np.int32)
    targets = rng.integers(0, 4, size=4)

    def loss_and_grad() -> tuple[float, dict[str, np.ndarray]]:
        model.fill_vocabulary()
        loss, grads = model.loss_and_grad(ids, feats, targets, train=train, seed=seed, step=1)
        return loss, {**grads, **model.char_grads(grads["E"][:, model.word_dim :])}

    params = {k: model.params[k] for k in ("W0", "char_E", "char_W", "char_b")}
    return check(name, params, loss_and_grad)
