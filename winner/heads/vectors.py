"""A trained model's word vectors out: the (fine-tuned) embedding table in word2vec format, and nearest words.

Every head trains its embedding table E, one row per vocabulary word (the language model adds a padding row,
which is not a word and is left out). gensim writes and searches it, so the file loads anywhere word2vec does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from winner.core.atomic import write_file_atomic
from winner.data.embeddings import keyed_vectors
from winner.data.windows import normalise
from winner.errors import WinnerError
from winner.heads.api import load


def model_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(words, vectors) of the model in `path` (a run or model directory): row i of the table is word i."""
    head = load(path).model
    words = list(head.vocab.itos if hasattr(head, "vocab") else head.words.itos)
    table = np.asarray(head.model.params["E"])[: len(words)]
    return words, np.ascontiguousarray(table, dtype=np.float32)


def export_vectors(path: str | Path, out: str | Path, binary: bool = False) -> int:
    """Write the model's word vectors to `out` in word2vec format (text, or binary with `binary`), atomically;
    returns the number of words."""
    words, table = model_vectors(path)
    write_file_atomic(out, lambda tmp: keyed_vectors(words, table).save_word2vec_format(str(tmp), binary=binary))
    return len(words)


def nearest_words(path: str | Path, word: str, n: int = 10) -> list[tuple[str, float]]:
    """The `n` words whose vectors have the highest cosine similarity to `word`'s (looked up as given, then in the
    model's lookup form: lowercase, digits as 0)."""
    words, table = model_vectors(path)
    kv = keyed_vectors(words, table)
    key = word if word in kv.key_to_index else normalise(word)
    if key not in kv.key_to_index:
        raise WinnerError(f"{word!r} is not in the model's vocabulary of {len(words):,} words")
    return [(w, float(s)) for w, s in kv.most_similar(key, topn=n)]
