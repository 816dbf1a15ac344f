"""Sentences -> window id arrays, plus the lookup normalisation and the casing feature.

Words are looked up in a normalised form (lowercase, every digit -> 0) so that pretrained vectors and
rare numbers share rows; the case information this throws away comes back as a separate small feature
(Collobert et al. 2011, https://jmlr.org/papers/v12/collobert11a.html, section 3.5).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

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
    """Normalised word ids, one int32 array per sentence."""
    return [vocab.ids([normalise(w) for w in s]) for s in sentences]


def casing_ids(sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
    return [np.fromiter((casing(w) for w in s), dtype=np.int32, count=len(s)) for s in sentences]


def make_windows(per_sentence: Sequence[np.ndarray], half_width: int, pad_id: int) -> np.ndarray:
    """(N_tokens, 2w+1) int32 windows centred on every token, padded with pad_id beyond sentence edges.

    Built by fancy indexing into one padded stream: no Python loop over tokens.
    """
    w = half_width
    if not per_sentence:
        return np.zeros((0, 2 * w + 1), dtype=np.int32)
    lengths = np.fromiter((len(s) for s in per_sentence), dtype=np.int64, count=len(per_sentence))
    pad = np.full(w, pad_id, dtype=np.int32)
    pieces = []
    for s in per_sentence:
        pieces.extend((pad, np.asarray(s, dtype=np.int32)))
    pieces.append(pad)
    stream = np.concatenate(pieces)
    # token t of sentence k sits after (k+1) pads and all earlier tokens and pads
    starts = np.cumsum(np.concatenate(([0], lengths[:-1] + w))) + w
    centres = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths) + np.arange(
        lengths.sum())
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
    ids = make_windows(word_ids(sentences, words), half_width, words.pad_id or 0)
    feats = make_windows(casing_ids(sentences), half_width, CASING_VOCAB.stoi[PAD])
    return ids, feats
