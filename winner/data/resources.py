"""Where things live: the shipped `data/`, the cache, and the shared corpora beside the repo.

Environment variables override the defaults: WINNER_DATA (shipped data), WINNER_CACHE (parsed
vectors, trained default embeddings) and WINNER_SHARED_DATA (`../shared/data`). The functions read
the environment on every call, so tests can point them elsewhere with monkeypatch.setenv.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]

WIKIGOLD_SPLITS = ("train", "dev", "test")
BROWN_SPLITS = ("train", "valid", "test")


def data_dir() -> Path:
    """The data the project ships: the repo's `data/`, or $WINNER_DATA."""
    env = os.environ.get("WINNER_DATA")
    return Path(env).expanduser() if env else _REPO / "data"


def cache_dir() -> Path:
    """Slow-to-make derived files (parsed vectors, trained word2vec): $WINNER_CACHE or ~/.cache/winner."""
    env = os.environ.get("WINNER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "winner"


# The values at import time, for display and for callers that do not expect the environment to change.
DATA_DIR = data_dir()
CACHE_DIR = cache_dir()


def shared_data_dir() -> Path | None:
    """`../shared/data` beside the repo (or $WINNER_SHARED_DATA) if it exists, else None."""
    env = os.environ.get("WINNER_SHARED_DATA")
    path = Path(env).expanduser() if env else _REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


def wikigold_path(split: str) -> Path:
    """The shipped WikiGold split (`train`, `dev` or `test`), 2-column CoNLL; see data/README.md."""
    if split not in WIKIGOLD_SPLITS:
        raise ValueError(f"WikiGold split must be one of {WIKIGOLD_SPLITS}, got {split!r}")
    return data_dir() / "wikigold" / f"{split}.conll"


def brown_stream_path(split: str) -> Path:
    """The shipped Brown token stream (`train`, `valid` or `test`) prepared as in Bengio et al. 2003."""
    if split not in BROWN_SPLITS:
        raise ValueError(f"Brown split must be one of {BROWN_SPLITS}, got {split!r}")
    return data_dir() / "brown" / f"{split}.tokens.txt.gz"
