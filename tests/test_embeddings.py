"""Loading vectors in every gensim format (with the parse cache), refusing pickles, default word2vec, alignment
to a vocab."""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors, Word2Vec

from winner.data import embeddings
from winner.data.embeddings import (
    align_vectors,
    default_vectors,
    load_keyed_vectors,
    top_words,
    train_word2vec,
    vector_scale,
)
from winner.data.resources import shared_data_dir
from winner.errors import WinnerError

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


@pytest.mark.parametrize("name", ["vectors.kv", "vectors.bin", "vectors"])
def test_native_loads_with_trust_pickle(tmp_path, kv, name):
    path = _write(kv, tmp_path / name, "native")
    with pytest.raises(WinnerError, match="pickle"):
        load_keyed_vectors(str(path), progress=False)
    _same(load_keyed_vectors(str(path), progress=False, trust_pickle=True), kv)
    assert not (tmp_path / "cache" / "vectors").exists()  # pickles are loaded as they are, never cached


def test_saved_word2vec_model_loads_its_vectors(tmp_path):
    model = Word2Vec([["a", "b", "c"]] * 5, vector_size=4, min_count=1, workers=1, seed=0, epochs=1)
    model.save(str(tmp_path / "w2v.model"))
    _same(load_keyed_vectors(str(tmp_path / "w2v.model"), progress=False, trust_pickle=True), model.wv)


def test_text_is_parsed_once_then_memory_mapped(tmp_path, kv, monkeypatch):
    path = _write(kv, tmp_path / "glove.txt", "glove")
    first = load_keyed_vectors(str(path), progress=False)
    entries = list((tmp_path / "cache" / "vectors").iterdir())
    assert len(entries) == 1
    assert sorted(p.name for p in entries[0].iterdir()) == ["meta.json", "vectors.npy", "words.json"]

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
    with pytest.raises(WinnerError, match="pickle"):
        load_keyed_vectors(str(path), progress=False)
    with pytest.raises(WinnerError, match="could not load it as gensim native"):
        load_keyed_vectors(str(path), progress=False, trust_pickle=True)


# ------------------------------------------------------------------------------------ pickles and the cache

FIXTURES = Path(__file__).parent / "fixtures"
WINNER = Path(sys.executable).with_name("winner")  # the installed command
REFUSAL = "is a pickle (gensim native format): loading it would run any code in it"
PICKLE_KINDS = ["protocol4", "protocol0", "gzip", "gensim"]


class _Touch:
    """Unpickling this creates `marker`: a stand-in for the code an attacker hides in a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _evil_bytes(kind: str, marker: Path, tmp_path: Path) -> bytes:
    """A file whose unpickling creates `marker`: a bare pickle (protocol 4 or 0), a gzipped one, or a genuine
    gensim KeyedVectors file carrying the payload as an attribute."""
    if kind == "gensim":
        kv = KeyedVectors(vector_size=2)
        kv.add_vectors(["a", "b"], np.ones((2, 2), dtype=np.float32))
        kv.payload = _Touch(marker)
        kv.save(str(tmp_path / "gensim-shaped.kv"))
        return (tmp_path / "gensim-shaped.kv").read_bytes()
    data = pickle.dumps(_Touch(marker), protocol=0 if kind == "protocol0" else 4)
    return gzip.compress(data) if kind == "gzip" else data


def _assert_refused(message: str, path: Path, marker: Path) -> None:
    assert not marker.exists()
    assert "\n" not in message and str(path) in message and REFUSAL in message
    assert "save_word2vec_format" in message and "--trust-pickle" in message


def _assert_no_pickles(folder: Path) -> None:
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert p.suffix not in (".kv", ".model", ".pkl", ".pickle"), p
        assert p.read_bytes()[:1] != b"\x80", p
        if p.suffix == ".npy":
            np.load(p, allow_pickle=False)


@pytest.mark.parametrize("kind", PICKLE_KINDS)
def test_the_evil_files_really_run_code(tmp_path, kind):
    marker = tmp_path / "marker"
    data = _evil_bytes(kind, marker, tmp_path)
    assert data[:1] == (b"c" if kind == "protocol0" else b"\x1f" if kind == "gzip" else b"\x80")
    pickle.loads(gzip.decompress(data) if kind == "gzip" else data)
    assert marker.exists()  # so that the tests below, where it must not appear, mean something


@pytest.mark.parametrize("kind", PICKLE_KINDS)
@pytest.mark.parametrize(
    "name", ["vectors.txt", "vectors.bin", "vectors.kv", "vectors.model", "vectors.txt.gz", "vectors"]
)
def test_pickles_are_refused_whatever_their_name(tmp_path, name, kind):
    marker = tmp_path / "marker"
    path = tmp_path / name
    path.write_bytes(_evil_bytes(kind, marker, tmp_path))
    with pytest.raises(WinnerError) as info:
        load_keyed_vectors(str(path), progress=False)
    _assert_refused(str(info.value), path, marker)


def test_downloader_name_that_is_a_pickle_is_refused(tmp_path):
    marker = tmp_path / "marker"
    folder = tmp_path / "gensim-data" / "evil-vectors-3"
    folder.mkdir(parents=True)
    (folder / "evil-vectors-3.gz").write_bytes(_evil_bytes("gzip", marker, tmp_path))
    with pytest.raises(WinnerError) as info:
        load_keyed_vectors("evil-vectors-3", progress=False)
    _assert_refused(str(info.value), folder / "evil-vectors-3.gz", marker)


def _counting_parses(monkeypatch) -> list:
    parses, parse = [], KeyedVectors.load_word2vec_format

    def counted(*args, **kwargs):
        parses.append(args[0])
        return parse(*args, **kwargs)

    monkeypatch.setattr(KeyedVectors, "load_word2vec_format", counted)
    return parses


@pytest.mark.parametrize("kind", ["protocol4", "gensim"])
def test_pickles_planted_in_the_cache_are_never_loaded(tmp_path, kv, monkeypatch, kind):
    marker = tmp_path / "marker"
    path = _write(kv, tmp_path / "v.txt", "text")
    parses = _counting_parses(monkeypatch)
    load_keyed_vectors(str(path), progress=False)
    (entry,) = (tmp_path / "cache" / "vectors").iterdir()
    evil = _evil_bytes(kind, marker, tmp_path)
    for name in ("meta.json", "vectors.npy", "words.json", "vectors.kv"):
        (entry / name).write_bytes(evil)
    _same(load_keyed_vectors(str(path), progress=False), kv)
    assert len(parses) == 2 and not marker.exists()
    again = load_keyed_vectors(str(path), progress=False)  # the entry was written afresh
    assert len(parses) == 2 and isinstance(again.vectors, np.memmap)
    _same(again, kv)
    _assert_no_pickles(tmp_path / "cache")


def test_old_pickle_cache_entries_are_removed_unread(tmp_path, kv):
    marker = tmp_path / "marker"
    path = _write(kv, tmp_path / "v.txt", "text")
    path_key = embeddings.hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    old = tmp_path / "cache" / "vectors" / f"{path_key}-0123456789abcdef"  # as winner.vectors.v1 wrote them
    old.mkdir(parents=True)
    (old / "vectors.kv").write_bytes(_evil_bytes("gensim", marker, tmp_path))
    _same(load_keyed_vectors(str(path), progress=False), kv)
    assert not old.exists() and not marker.exists()


def _save_npy(entry: Path, array: np.ndarray) -> None:
    with open(entry / "vectors.npy", "wb") as f:
        np.save(f, array, allow_pickle=array.dtype == object)


CORRUPTIONS = {
    "truncated npy": lambda e, m: (e / "vectors.npy").write_bytes((e / "vectors.npy").read_bytes()[:-5]),
    "empty npy": lambda e, m: (e / "vectors.npy").write_bytes(b""),
    "npz": lambda e, m: np.savez(open(e / "vectors.npy", "wb"), a=np.ones((5, 3), np.float32)),
    "object npy": lambda e, m: _save_npy(e, np.array([_Touch(m)] * 15, dtype=object).reshape(5, 3)),
    "integer npy": lambda e, m: _save_npy(e, np.ones((5, 3), dtype=np.int64)),
    "1-d npy": lambda e, m: _save_npy(e, np.ones(15, dtype=np.float32)),
    "big-endian npy": lambda e, m: _save_npy(e, np.ones((5, 3), dtype=">f4")),
    "nan": lambda e, m: _save_npy(e, np.full((5, 3), np.nan, dtype=np.float32)),
    "missing words": lambda e, m: (e / "words.json").unlink(),
    "word count": lambda e, m: (e / "words.json").write_text('["the"]'),
    "duplicate words": lambda e, m: (e / "words.json").write_text(json.dumps(["the"] * 5)),
    "words not strings": lambda e, m: (e / "words.json").write_text("[1, 2, 3, 4, 5]"),
    "deeply nested json": lambda e, m: (e / "words.json").write_text("[" * 100_000 + "]" * 100_000),
    "not utf-8": lambda e, m: (e / "words.json").write_bytes(b"\xff\xfe[]"),
    "old format": lambda e, m: (e / "meta.json").write_text('{"format": "winner.vectors.v1"}'),
    "meta not a dict": lambda e, m: (e / "meta.json").write_text("[]"),
    "entry is a file": lambda e, m: (_remove(e), e.write_bytes(b"junk")),
}


def _remove(entry: Path) -> None:
    import shutil

    shutil.rmtree(entry)


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_broken_cache_entries_are_parsed_again(tmp_path, kv, monkeypatch, corruption):
    marker = tmp_path / "marker"
    path = _write(kv, tmp_path / "v.txt", "text")
    load_keyed_vectors(str(path), progress=False)
    (entry,) = (tmp_path / "cache" / "vectors").iterdir()
    CORRUPTIONS[corruption](entry, marker)
    parses = _counting_parses(monkeypatch)
    _same(load_keyed_vectors(str(path), progress=False), kv)
    assert len(parses) == 1 and not marker.exists()


def test_non_finite_vectors_are_refused(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("2 2\nthe 0.1 nan\ncat 0.3 inf\n", encoding="utf-8")
    with pytest.raises(WinnerError, match="NaN or infinity"):
        load_keyed_vectors(str(path), progress=False)


def test_cache_round_trip_in_a_fresh_process(tmp_path, kv):
    path = _write(kv, tmp_path / "v.txt", "text")
    mtime = path.stat().st_mtime_ns
    first = load_keyed_vectors(str(path), progress=False)
    script = (
        "import json, sys\n"
        "import numpy as np\n"
        "from gensim.models import KeyedVectors\n"
        "from winner.data.embeddings import load_keyed_vectors\n"
        "def no_parsing(*a, **k):\n"
        "    raise SystemExit('parsed again instead of reading the cache')\n"
        "KeyedVectors.load_word2vec_format = no_parsing\n"
        "kv = load_keyed_vectors(sys.argv[1], progress=False)\n"
        "print(json.dumps({'words': kv.index_to_key, 'vectors': kv.vectors.tolist(),\n"
        "                  'dtype': str(kv.vectors.dtype), 'memmap': isinstance(kv.vectors, np.memmap)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True,
                         timeout=300)
    cached = json.loads(out.stdout)
    assert path.stat().st_mtime_ns == mtime
    assert cached["words"] == first.index_to_key == WORDS
    assert cached["dtype"] == "float32" and cached["memmap"]
    np.testing.assert_array_equal(np.array(cached["vectors"], dtype=np.float32), first.vectors)
    _assert_no_pickles(tmp_path / "cache")


def test_default_vectors_cache_holds_no_pickle(tmp_path, monkeypatch):
    import winner.data.corpus

    marker = tmp_path / "marker"
    monkeypatch.setattr(winner.data.corpus, "brown_sentences", lambda split: [["the", "cat", "sat"], ["a", "dog"]] * 5)
    trained = []

    def tiny(sentences):
        trained.append(len(sentences))
        return train_word2vec(sentences, vector_size=4, min_count=1, epochs=1)

    monkeypatch.setattr(embeddings, "train_word2vec", tiny)
    old = tmp_path / "cache" / "word2vec" / "0123456789abcdef"  # an entry of the old format
    old.mkdir(parents=True)
    (old / "vectors.kv").write_bytes(_evil_bytes("gensim", marker, tmp_path))
    first = default_vectors(progress=False)
    assert not old.exists()
    _assert_no_pickles(tmp_path / "cache")
    (entry,) = (tmp_path / "cache" / "word2vec").iterdir()
    again = default_vectors(progress=False)
    assert len(trained) == 1 and isinstance(again.vectors, np.memmap)
    _same(again, first)
    for name in ("meta.json", "vectors.npy", "words.json", "vectors.kv"):
        (entry / name).write_bytes(_evil_bytes("protocol4", marker, tmp_path))
    _same(default_vectors(progress=False), first)
    assert len(trained) == 2 and not marker.exists()


def test_trust_pickle_reaches_the_loader_from_the_settings(tmp_path, kv):
    from winner.cli.steps import settings_from_options
    from winner.data.hub import load_sentences
    from winner.data.labelled import embedding_table
    from winner.heads.settings import NERSettings, ScoreSettings

    path = _write(kv, tmp_path / "mine.kv", "native")
    train = load_sentences(str(FIXTURES / "wikigold_sample.txt"))
    with pytest.raises(WinnerError, match="pickle"):
        embedding_table(str(path), 0, train, np.random.default_rng(0), quiet=True)
    table, words, _, _ = embedding_table(str(path), 0, train, np.random.default_rng(0), quiet=True,
                                         trust_pickle=True)
    np.testing.assert_array_equal(table[words.index("paris")], kv["paris"])
    # a pipeline step's `trust_pickle = true`, also as a string from ${var} substitution
    assert settings_from_options(NERSettings, {"trust_pickle": True}, "ner train").trust_pickle is True
    assert settings_from_options(ScoreSettings, {"trust_pickle": "true"}, "score train").trust_pickle is True
    assert NERSettings().trust_pickle is False and ScoreSettings().trust_pickle is False


@pytest.mark.parametrize(("command", "module", "function"),
                         [("ner", "winner.heads.ner", "train_tagger"),
                          ("score", "winner.heads.scorer", "train_scorer")])
def test_cli_trust_pickle_option(tmp_path, monkeypatch, command, module, function):
    import importlib

    from typer.testing import CliRunner

    from winner.cli.app import app

    seen = []
    monkeypatch.setattr(importlib.import_module(module), function, seen.append)
    for flags, expected in (([], False), (["--trust-pickle"], True)):
        result = CliRunner().invoke(app, [command, "train", "--out", str(tmp_path / "run"), *flags])
        assert result.exit_code == 0, result.output
        assert seen[-1].trust_pickle is expected


@pytest.mark.parametrize(("command", "name"), [("ner", "vectors.txt"), ("score", "vectors.kv")])
def test_installed_cli_refuses_a_pickle(tmp_path, command, name):
    marker = tmp_path / "marker"
    evil = tmp_path / name
    evil.write_bytes(_evil_bytes("protocol4", marker, tmp_path))
    data = str(FIXTURES / "wikigold_sample.txt")
    result = subprocess.run(
        [str(WINNER), command, "train", "--train", data, "--dev", data, "--embeddings", str(evil), "--epochs", "1",
         "--hidden", "8", "--quiet", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]  # progress goes there too
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.rstrip("\n").endswith(errors[0])
    _assert_refused(errors[0], evil, marker)


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
