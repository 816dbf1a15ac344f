"""Benchmark rows of tagging with character windows (core/chars.py): the tagger's default character CNN on the
bench's NER network, with some tokens words the vocabulary lacks.

Every vocabulary word's character vector is in the first-layer table, so those windows cost what they cost without
characters; a word the vocabulary lacks gets its character vector computed at tagging time and its windows go
through a table of their own rows, as `winner ner tag` does. The timed call includes both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from winner.core.bench_common import Report, lookup_tagging_rows, windows_of, zipf_ids
from winner.core.chars import CharConfig, CharWindowMLP
from winner.core.mlp import MLPConfig

CHARS = dict(n_chars=64, char_dim=25, n_filters=50, width=3)  # `winner ner train`'s default character CNN
UNSEEN = 0.02  # share of tokens the vocabulary lacks
N_UNSEEN_WORDS = 1_000


def random_words(rng: np.random.Generator, n: int, n_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """n words of 2-12 random characters as (chars, offsets), the layout CharWindowMLP.set_words takes (codes 0
    and 1 are the padding and unknown characters)."""
    lengths = rng.integers(2, 13, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return rng.integers(2, n_chars, int(offsets[-1])).astype(np.int32), offsets


def char_model(ner: dict) -> CharWindowMLP:
    """The bench's NER network whose word rows end in character vectors (embed + n_filters columns)."""
    cfg = MLPConfig(n_positions=ner["positions"], vocab_size=ner["vocab"], embed_dim=ner["embed"] + CHARS["n_filters"],
                    n_out=ner["classes"], hidden=(ner["hidden"],))
    return CharWindowMLP(cfg, CharConfig(**CHARS), seed=1)


def char_tag_workload(report: Report, rng: np.random.Generator, ner: dict, threads: tuple[int, ...], repeats: int,
                      quick: bool, progress: Callable[[str], None]) -> None:
    """Tagging tokens/s with character windows on, UNSEEN of the tokens out of the vocabulary (winner only)."""
    n_tok = 50_000 if quick else 200_000
    model = char_model(ner)
    V = ner["vocab"]
    model.set_words(*random_words(rng, V, CHARS["n_chars"]))
    model.fill_vocabulary()
    stream = zipf_ids(rng, V, n_tok)
    unseen = rng.random(n_tok) < UNSEEN
    stream[unseen] = V + rng.integers(0, N_UNSEEN_WORDS, int(unseen.sum()))
    ids = windows_of(stream, ner["positions"])
    feats = np.zeros_like(ids)
    new_words = random_words(rng, N_UNSEEN_WORDS, CHARS["n_chars"])
    word_dim = model.word_dim

    def tag(method: str) -> np.ndarray:
        rows = np.zeros((N_UNSEEN_WORDS, model.config.embed_dim), model.dtype)
        rows[:, :word_dim] = model.E[0, :word_dim]
        rows[:, word_dim:] = model.word_vectors(*new_words)
        return model.predict_log_proba_extra(ids, feats, rows, method=method)

    lookup_tagging_rows(report, "tagging, character windows", "characters", n_tok, tag, threads, repeats, progress,
                        f"{UNSEEN:.0%} of tokens unseen: character vectors computed per call")
