"""Sentences -> window id arrays, plus the lookup normalisation and the casing feature.

Words are looked up in a normalised form (lowercase, every digit -> 0) so that pretrained vectors and
rare numbers share rows; the case information this throws away comes back as a separate small feature
(Collobert et al. 2011, https://jmlr.org/papers/v12/collobert11a.html, section 3.5).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain

import numpy as np

from winner.data.vectorised import casing_classes, lookup_ids, normalised_forms
from winner.data.vocab import PAD, UNK, Vocab

_DIGIT = re.compile(r"\d")

# Casing classes; index 0 is the padding beyond sentence edges.
CASINGS = ("<pad>", "lower", "title", "upper", "mixed", "numeric", "has_digit", "other")
CASING_VOCAB = Vocab(CASINGS)


def normalise(word: str) -> str:
    """The lookup form of a word: lowercase, every digit replaced by 0."""
    return _DIGIT.sub("0", word.lower())


def casing(word: str) -> int:
    """Casing class id of a word (see CASINGS)."""
    has_alpha = any(ch.isalpha() for ch in word)
    has_digit = any(ch.isdigit() for ch in word)
    if not has_alpha:
        return 5 if has_digit else 7
    if has_digit:
        return 6
    if word.islower():
        return 1
    if word.isupper():
        return 3
    if word[0].isupper() and word[1:] == word[1:].lower():
        return 2
    return 4


def word_ids(sentences: Sequence[Sequence[str]], vocab: Vocab) -> list[np.ndarray]:
    """Normalised word ids, one int32 array per sentence, token by token: the straightforward path that
    flat_word_ids (used by featurize) is tested against."""
    return [vocab.ids([normalise(w) for w in s]) for s in sentences]


def casing_ids(sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """casing of every token, one int32 array per sentence, token by token (flat_casing_ids's reference)."""
    return [np.fromiter((casing(w) for w in s), dtype=np.int32, count=len(s)) for s in sentences]


def flat_word_ids(tokens: Sequence[str], vocab: Vocab) -> np.ndarray:
    """`vocab.ids` of every token's normalised form, as one int32 array (one pass over the batch)."""
    forms = normalised_forms(tokens)
    if forms is None:  # a token holding a newline: token by token
        return vocab.ids([normalise(w) for w in tokens])
    out = lookup_ids(forms, vocab.stoi, vocab.unk_id)
    if vocab.unk_id is None and None in out:
        return vocab.ids(forms)  # raises, naming the missing word
    return np.asarray(out, dtype=np.int32)


def flat_casing_ids(tokens: Sequence[str]) -> np.ndarray:
    """`casing` of every token, as one int32 array."""
    out = casing_classes(tokens)
    if out is None:  # an empty token: token by token
        return np.fromiter((casing(w) for w in tokens), dtype=np.int32, count=len(tokens))
    return out


def word_keys(tokens: Sequence[str]) -> np.ndarray:
    """(N,) int64: the same number for tokens with the same lookup form (`normalise`), numbered as first met, -1 for
    a token with no letter or digit (punctuation links nothing in document codes)."""
    forms = normalised_forms(tokens)
    if forms is None:
        forms = [normalise(w) for w in tokens]
    numbers: dict[str, int] = {}
    keys = np.fromiter([numbers.setdefault(form, len(numbers)) for form in forms], dtype=np.int64, count=len(forms))
    linked = np.fromiter((any(map(str.isalnum, form)) for form in numbers), dtype=bool, count=len(numbers))
    return np.where(linked[keys], keys, -1) if len(keys) else keys


def make_windows(per_sentence: Sequence[np.ndarray], half_width: int, pad_id: int) -> np.ndarray:
    """(N_tokens, 2w+1) int32 windows centred on every token, padded with pad_id beyond sentence edges."""
    if not per_sentence:
        return np.zeros((0, 2 * half_width + 1), dtype=np.int32)
    lengths = np.fromiter((len(s) for s in per_sentence), dtype=np.int64, count=len(per_sentence))
    return flat_windows(np.concatenate([np.asarray(s, dtype=np.int32) for s in per_sentence]), lengths,
                        half_width, pad_id)


def flat_windows(flat: np.ndarray, lengths: np.ndarray, half_width: int, pad_id: int) -> np.ndarray:
    """make_windows of the sentences of lengths `lengths` laid end to end in `flat`.

    Built by fancy indexing into one padded stream: no Python loop over tokens or sentences.
    """
    w = half_width
    n = int(lengths.sum())
    if not len(lengths):
        return np.zeros((0, 2 * w + 1), dtype=np.int32)
    # token t of sentence k sits after (k+1) pads and all earlier tokens and pads
    sentence = np.repeat(np.arange(len(lengths)), lengths)
    centres = np.arange(n) + (sentence + 1) * w
    stream = np.full(n + (len(lengths) + 1) * w, pad_id, dtype=np.int32)
    stream[centres] = flat
    return stream[centres[:, None] + np.arange(-w, w + 1)[None, :]]


def build_word_vocab(sentences: Sequence[Sequence[str]], extra_words: Sequence[str] = (),
                     min_count: int = 1) -> Vocab:
    """Normalised training words (min_count) plus extra words (e.g. the pretrained vectors' most frequent)."""
    vocab = Vocab.build((normalise(w) for s in sentences for w in s), specials=(PAD, UNK), min_count=min_count)
    known = set(vocab.itos)
    extra = [w for w in dict.fromkeys(normalise(w) for w in extra_words) if w not in known]
    return Vocab(vocab.itos + extra)


def featurize(sentences: Sequence[Sequence[str]], words: Vocab, half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Word and casing windows (N_tokens, 2w+1) for every token of every sentence: the input of every head
    that reads labelled sentences (tagger, scorer)."""
    tokens = list(chain.from_iterable(sentences))
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    ids = flat_windows(flat_word_ids(tokens, words), lengths, half_width, words.pad_id or 0)
    feats = flat_windows(flat_casing_ids(tokens), lengths, half_width, CASING_VOCAB.stoi[PAD])
    return ids, feats
