"""The GloVe subset shipped in data/glove: small, float16 on disk, float32 in use, the tagger's default."""

from __future__ import annotations

import json

import numpy as np

from winner.data.conll import read_conll
from winner.data.embeddings import SHIPPED_GLOVE_DIR, shipped_glove
from winner.data.labelled import embedding_table
from winner.data.resources import data_dir, wikigold_path
from winner.heads.settings import NERSettings, ScoreSettings


def test_shipped_subset_is_compact_and_covers_the_shipped_corpora():
    path = data_dir() / SHIPPED_GLOVE_DIR
    assert sum(p.stat().st_size for p in path.iterdir()) <= 25_000_000
    assert np.load(path / "vectors.npy", mmap_mode="r").dtype == np.float16
    meta = json.loads((path / "meta.json").read_text())
    kv = shipped_glove()
    assert kv.vectors.dtype == np.float32 and kv.vectors.shape == (meta["words"], 100)
    assert kv.index_to_key[:3] == ["the", ",", "."]
    tokens = [w.lower() for s in read_conll(wikigold_path("test")) for w in s.tokens]
    # the source lacks numbers, single letters and clitics such as 's (see ../shared/data/README.md)
    assert np.mean([w in kv.key_to_index for w in tokens]) > 0.9


def test_default_embeddings_are_the_shipped_subset():
    assert NERSettings().embeddings == ScoreSettings().embeddings == "default"
    train = read_conll(wikigold_path("dev"))
    table, words, stats, has_vector = embedding_table("default", 0, train, np.random.default_rng(0), quiet=True)
    kv = shipped_glove()
    assert table.shape == (len(words), 100) and stats["embeddings"] == "default"
    row = words.index("paris")
    np.testing.assert_array_equal(table[row], kv["paris"])
    assert has_vector[row]
