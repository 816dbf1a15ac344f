"""The GloVe 6B 100-d subset shipped in data/glove (built by scripts/glove_subset.py): the tagger's and the
scorer's default vectors, so that the offline default starts from vectors trained on six billion tokens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from winner.data.resources import data_dir
from winner.errors import WinnerError

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

SHIPPED_GLOVE_DIR = "glove"


def shipped_glove() -> KeyedVectors:
    """The shipped vectors (float16 on disk) as float32 KeyedVectors."""
    from gensim.models import KeyedVectors

    path = data_dir() / SHIPPED_GLOVE_DIR
    try:
        words = json.loads((path / "words.json").read_text(encoding="utf-8"))
        vectors = np.load(path / "vectors.npy", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise WinnerError(f"{path}: cannot read the shipped GloVe vectors ({e}); rebuild them with "
                          "scripts/glove_subset.py") from e
    if not isinstance(words, list) or vectors.ndim != 2 or vectors.shape[0] != len(words):
        raise WinnerError(f"{path}: vectors.npy {vectors.shape} does not match words.json ({len(words)} words)")
    kv = KeyedVectors(vectors.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, vectors.astype(np.float32))
    return kv
