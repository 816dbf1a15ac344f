"""Loading vectors in every gensim format (with the parse cache), default word2vec, alignment to a vocab."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
from gensim.models import KeyedVectors, Word2Vec

from winner import embeddings
from winner.embeddings import (
    align_vectors,
    default_vectors,
    load_keyed_vectors,
    top_words,
    train_word2vec,
    vector_scale,
)
from winner.errors import WinnerError
from winner.resources import shared_data_dir

SHARED = shared_data_dir()
USER_CACHE = os.environ.get("WINNER_CACHE")  # read before the autouse fixture replaces it
WORDS = ["the", "paris", "cat", "0000", "naïve"]


@pytest.fixture(autouse=True)
def private_cache(monkeypatch, tmp_path):
    """Every test gets its own empty cache and gensim-data folder, so nothing touches the user's."""
    monkeypatch.setenv("WINNER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENSIM_DATA_DIR", str(tmp_path / "gensim-data"))


@pytest.fixture
def kv() -> KeyedVectors:
    vectors = KeyedVectors(vector_size=3)
    values = np.arange(len(WORDS) * 3, dtype=np.float32).reshape(-1, 3) / 4 - 1
    vectors.add_vectors(WORDS, values)
    return vectors


def _same(a: KeyedVectors, b: KeyedVectors) -> None:
    assert a.index_to_key == b.index_to_key
    np.testing.assert_allclose(a.vectors, b.vectors, rtol=1e-6)


def _write(kv: KeyedVectors, path, kind: str):
    """Write `kv` to `path` in one of the formats load_keyed_vectors reads."""
    if kind == "glove":
        lines = [" ".join([w] + [repr(float(x)) for x in kv[w]]) for w in kv.index_to_key]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "native":
        kv.save(str(path))
    else:
        kv.save_word2vec_format(str(path), binary=kind == "binary")
    return path


@pytest.mark.parametrize(
    ("name", "kind", "gz"),
    [
        ("vectors.txt", "text", False),
        ("vectors.txt.gz", "text", True),
        ("vectors.bin", "binary", False),
        ("vectors.bin.gz", "binary", True),
        ("vectors.w2v", "binary", False),  # binary without the .bin hint: recognised by content
        ("glove.txt", "glove", False),
        ("glove.txt.gz", "glove", True),
        ("vectors.kv", "native", False),
    ],
)
def test_every_format_loads(tmp_path, kv, name, kind, gz):
    path = tmp_path / name
    if gz:
        plain = _write(kv, tmp_path / "plain", kind)
        path.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        _write(kv, path, kind)
    loaded = load_keyed_vectors(str(path), progress=False)
    _same(loaded, kv)
    assert loaded.vector_size == 3


def test_sniffed_formats(tmp_path, kv):
    assert embeddings._sniff_format(_write(kv, tmp_path / "a.txt", "text")) == "word2vec-text"
    assert embeddings._sniff_format(_write(kv, tmp_path / "a.dat", "binary")) == "word2vec-binary"
    assert embeddings._sniff_format(_write(kv, tmp_path / "g.txt", "glove")) == "glove-text"
    assert embeddings._sniff_format(_write(kv, tmp_path / "n.vec", "native")) == "native"


def test_saved_word2vec_model_loads_its_vectors(tmp_path):
    model = Word2Vec([["a", "b", "c"]] * 5, vector_size=4, min_count=1, workers=1, seed=0, epochs=1)
    model.save(str(tmp_path / "w2v.model"))
    _same(load_keyed_vectors(str(tmp_path / "w2v.model"), progress=False), model.wv)


def test_text_is_parsed_once_then_memory_mapped(tmp_path, kv, monkeypatch):
    path = _write(kv, tmp_path / "glove.txt", "glove")
    first = load_keyed_vectors(str(path), progress=False)
    entries = list((tmp_path / "cache" / "vectors").iterdir())
    assert len(entries) == 1 and (entries[0] / "vectors.kv").is_file()

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again instead of reading the cache")

    monkeypatch.setattr(KeyedVectors, "load_word2vec_format", no_parsing)
    cached = load_keyed_vectors(str(path), progress=False)
    assert isinstance(cached.vectors, np.memmap)
    _same(cached, first)


def test_changed_file_is_parsed_again_and_the_stale_entry_removed(tmp_path, kv):
    path = _write(kv, tmp_path / "glove.txt", "glove")
    load_keyed_vectors(str(path), progress=False)
    path.write_text("dog 1.0 2.0\ncat 3.0 4.0\n", encoding="utf-8")
    os.utime(path, ns=(0, 10**18))  # a different mtime even on coarse-grained file systems
    changed = load_keyed_vectors(str(path), progress=False)
    assert changed.index_to_key == ["dog", "cat"] and changed.vector_size == 2
    assert len(list((tmp_path / "cache" / "vectors").iterdir())) == 1


def test_unwritable_cache_still_loads(tmp_path, kv, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("WINNER_CACHE", str(blocker))
    _same(load_keyed_vectors(str(_write(kv, tmp_path / "v.txt", "text")), progress=False), kv)


def test_local_downloader_name(tmp_path, kv):
    folder = tmp_path / "gensim-data" / "tiny-vectors-3"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("raise SystemExit('must not be run')\n")
    plain = _write(kv, tmp_path / "plain.txt", "text")
    (folder / "tiny-vectors-3.gz").write_bytes(gzip.compress(plain.read_bytes()))
    _same(load_keyed_vectors("tiny-vectors-3", progress=False), kv)


@pytest.mark.parametrize("spec", ["glove-wiki-gigaword-100", "no/such/file.txt", "../absent.bin"])
def test_unknown_spec(spec):
    with pytest.raises(WinnerError) as info:
        load_keyed_vectors(spec, progress=False)
    assert repr(spec) in str(info.value)
    assert "neither a vectors file nor a gensim-downloader name available locally" in str(info.value)


@pytest.mark.parametrize(
    "content",
    [b"3 2\nthe 0.1 0.2\ncat 0.3\n", b"the 0.1 0.2\ncat 0.3 x\n", b"", b"\n\n", b"caf\xe9 0.1 0.2\n"],
)
def test_malformed_vectors_file(tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(WinnerError, match=str(path)):
        load_keyed_vectors(str(path), progress=False)


def test_not_a_gensim_pickle(tmp_path):
    path = tmp_path / "junk.kv"
    path.write_bytes(b"not a pickle")
    with pytest.raises(WinnerError, match="gensim native"):
        load_keyed_vectors(str(path), progress=False)


# ----------------------------------------------------------------------------------------- alignment


def test_align_takes_rows_and_falls_back_to_lowercase(kv):
    words = ["the", "Paris", "unseen", "cat", "THE"]
    table, stats = align_vectors(kv, words, np.random.default_rng(0))
    assert table.shape == (5, 3) and table.dtype == np.float32
    np.testing.assert_array_equal(table[0], kv["the"])
    np.testing.assert_array_equal(table[1], kv["paris"])
    np.testing.assert_array_equal(table[3], kv["cat"])
    np.testing.assert_array_equal(table[4], kv["the"])
    a = np.sqrt(3) * np.std(kv.vectors.astype(np.float64))
    assert np.all(np.abs(table[2]) <= a)
    assert stats == {"found": 4, "total": 5, "coverage": 0.8, "lowered": 2, "scale": pytest.approx(a)}

    table, stats = align_vectors(kv, words, np.random.default_rng(0), dtype=np.float64, fallback_lower=False)
    assert table.dtype == np.float64
    assert (stats["found"], stats["lowered"]) == (2, 0)


def test_random_rows_have_the_pretrained_scale():
    rng = np.random.default_rng(1)
    kv = KeyedVectors(vector_size=20)
    kv.add_vectors([f"w{i}" for i in range(2000)], rng.normal(0.1, 0.7, size=(2000, 20)).astype(np.float32))
    words = [f"w{i}" for i in range(100)] + [f"oov{i}" for i in range(3000)]
    table, stats = align_vectors(kv, words, np.random.default_rng(2))
    assert stats["coverage"] == pytest.approx(100 / 3100)
    assert np.std(table[100:]) == pytest.approx(np.std(kv.vectors), rel=0.03)
    assert abs(np.mean(table[100:])) < 0.02
    assert vector_scale(kv, chunk=7) == pytest.approx(float(np.std(kv.vectors.astype(np.float64))), rel=1e-9)


def test_align_is_reproducible(kv):
    words = ["x", "y", "the"]
    a, _ = align_vectors(kv, words, np.random.default_rng(5))
    b, _ = align_vectors(kv, words, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_align_empty_word_list(kv):
    table, stats = align_vectors(kv, [], np.random.default_rng(0))
    assert table.shape == (0, 3) and stats["coverage"] == 0.0


def test_top_words(kv):
    assert top_words(kv, 2) == ["the", "paris"]
    assert top_words(kv, 100) == WORDS


def test_train_word2vec_is_deterministic():
    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat", "on", "a", "log"]] * 20
    a = train_word2vec(sentences, vector_size=8, epochs=2)
    b = train_word2vec(sentences, vector_size=8, epochs=2)
    assert a.vector_size == 8 and "cat" in a.key_to_index
    np.testing.assert_array_equal(a.vectors, b.vectors)


# ----------------------------------------------------------------------------------------- slow ones


@pytest.mark.slow
def test_default_vectors_trained_then_cached(monkeypatch):
    kv = default_vectors(progress=False)  # ~14 s: trains on the shipped Brown train stream
    assert kv.vector_size == 50
    assert len(kv) > 20_000
    assert "0000" in kv.key_to_index and "1961" not in kv.key_to_index
    monkeypatch.setattr(embeddings, "train_word2vec", lambda *a, **k: pytest.fail("trained again"))
    again = default_vectors(progress=False)
    assert isinstance(again.vectors, np.memmap)
    np.testing.assert_array_equal(again.vectors, kv.vectors)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.skipif(
    SHARED is None, reason="../shared/data not found (set WINNER_SHARED_DATA to its location)"
)
def test_shared_glove_loads(monkeypatch):
    # The real cache, not the per-test one: parsing takes ~30 s the first time, later runs read the cache.
    if USER_CACHE:
        monkeypatch.setenv("WINNER_CACHE", USER_CACHE)
    else:
        monkeypatch.delenv("WINNER_CACHE")
    kv = load_keyed_vectors(str(SHARED / "glove" / "glove.6B.100d.txt.gz"), progress=False)
    assert (len(kv), kv.vector_size) == (341_479, 100)
    assert top_words(kv, 3) == ["the", ",", "."]
