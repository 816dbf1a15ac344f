"""Token streams for the LM, the shipped Brown data, and where resources live."""

from __future__ import annotations

import gzip
import json

import pytest

from winner.data import resources
from winner.data.corpus import brown_sentences, brown_streams, brown_vocab, read_token_stream
from winner.data.vocab import UNK
from winner.errors import DataFormatError, WinnerError


def test_read_token_stream_ignores_line_breaks(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"the cat\r\nsat  on\tthe\n\n  mat .\n")
    assert read_token_stream(path) == ["the", "cat", "sat", "on", "the", "mat", "."]
    gz = tmp_path / "s.txt.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_token_stream(gz) == read_token_stream(path)


def test_read_token_stream_undecodable(tmp_path):
    path = tmp_path / "bad.txt.gz"
    path.write_bytes(gzip.compress(b"ok line\nsecond\ncaf\xe9\n"))
    with pytest.raises(DataFormatError) as info:
        read_token_stream(path)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: expected UTF-8")


def test_read_token_stream_missing(tmp_path):
    with pytest.raises(WinnerError, match="no such file"):
        read_token_stream(tmp_path / "absent.txt")


def test_brown_vocab_counts_over_all_splits():
    streams = {"train": ["a", "a", "b", "c"], "valid": ["a", "b", "b"], "test": ["a", "b", "c"]}
    vocab = brown_vocab(streams)
    assert vocab.itos == [UNK, "a", "b"]
    assert vocab.unk_id == 0


@pytest.fixture(scope="module")
def streams():
    return brown_streams()


def test_shipped_brown_streams(streams):
    meta = json.loads((resources.data_dir() / "brown" / "meta.json").read_text())
    for split, stream in streams.items():
        assert len(stream) == meta["splits"][split]["tokens"]
    assert {k: len(v) for k, v in streams.items()} == {"train": 800_000, "valid": 200_000, "test": 171_652}
    assert streams["train"][0] == "<text>"


def test_shipped_brown_vocab(streams):
    vocab = brown_vocab(streams)
    assert len(vocab) == 16_493
    assert vocab.itos[0] == UNK
    meta = json.loads((resources.data_dir() / "brown" / "meta.json").read_text())
    for split, stream in streams.items():
        assert int((vocab.ids(stream) == vocab.unk_id).sum()) == meta["splits"][split]["unk"]


def test_brown_sentences_are_the_train_lines(streams):
    sentences = brown_sentences()
    assert len(sentences) == 35_333
    assert [t for s in sentences for t in s] == streams["train"]


def test_resource_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WINNER_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("WINNER_CACHE", str(tmp_path / "c"))
    assert resources.data_dir() == tmp_path / "d"
    assert resources.cache_dir() == tmp_path / "c"
    assert resources.wikigold_path("dev") == tmp_path / "d" / "wikigold" / "dev.conll"
    assert resources.brown_stream_path("valid") == tmp_path / "d" / "brown" / "valid.tokens.txt.gz"
    with pytest.raises(ValueError, match="split"):
        resources.wikigold_path("valid")
    monkeypatch.setenv("WINNER_SHARED_DATA", str(tmp_path))
    assert resources.shared_data_dir() == tmp_path
    monkeypatch.setenv("WINNER_SHARED_DATA", str(tmp_path / "absent"))
    assert resources.shared_data_dir() is None


def test_default_resource_paths(monkeypatch):
    for name in ("WINNER_DATA", "WINNER_CACHE", "WINNER_SHARED_DATA"):
        monkeypatch.delenv(name, raising=False)
    repo = resources.Path(resources.__file__).resolve().parents[2]  # winner/data/resources.py
    assert resources.data_dir() == repo / "data"
    assert resources.cache_dir().parts[-2:] == (".cache", "winner")
    shared = resources.shared_data_dir()
    assert shared is None or shared == repo.parent / "shared" / "data"


# ---------------------------------------------------------------- raw text like the Brown preparation


@pytest.mark.parametrize("text,tokens", [
    ("A long long time ago in a", "a long long time ago in a"),
    ("He didn't say it; they can't, won't.", "he did n't say it ; they ca n't , wo n't ."),
    ("Atlanta's jury said it's John's and I'll, we're, you've, she'd, I'm", "atlanta 's jury said it 's john 's "
     "and i 'll , we 're , you 've , she 'd , i 'm"),
    ('He said "no evidence" -- that ...', "he said `` no evidence '' -- that ..."),
    ("\u201cQuoted\u201d text", "`` quoted '' text"),
    ("Mr. Smith of the U.S. left at 2:30 p.m. with $1,000.50 (50%) etc.", "mr. smith of the u.s. left at 2:30 "
     "p.m. with $1,000.50 ( 50% ) etc."),
    ("The end. A so-called o'clock start.", "the end . a so-called o'clock start ."),
    ("<text> the <unk> word", "<text> the <unk> word"),
])
def test_tokenize_like_brown(text, tokens):
    from winner.data.corpus import tokenize

    assert tokenize(text) == tokens.split()


def test_tokenize_keeps_known_abbreviations():
    from winner.data.corpus import tokenize

    assert tokenize("See the av. and the op. list") == "see the av . and the op . list".split()
    assert tokenize("See the av. and the op. list", known={"av.", "op."}) == "see the av. and the op. list".split()


def test_tokenize_reproduces_the_brown_streams(streams):
    """Joined back into text, the Brown lines come out of the prompt tokenizer unchanged (99% of them)."""
    from winner.data.corpus import tokenize

    vocab = brown_vocab(streams)
    lines = brown_sentences("valid")
    same = sum(tokenize(" ".join(line), known=vocab.stoi) == line for line in lines)
    assert same / len(lines) > 0.99


# ---------------------------------------------------------------- other corpora


def test_read_text_corpus_directory(tmp_path):
    from winner.data.corpus import read_text_corpus

    (tmp_path / "train.txt").write_text("The cat didn't sit.\nA dog sat.\n")
    (tmp_path / "dev.txt.gz").write_bytes(gzip.compress(b"The dog.\n"))
    streams = read_text_corpus(tmp_path)
    assert streams == {"train": "the cat did n't sit . a dog sat .".split(), "valid": ["the", "dog", "."]}
    (tmp_path / "test.txt").write_text("A cat.")
    assert read_text_corpus(tmp_path)["test"] == ["a", "cat", "."]


def test_read_text_corpus_single_file_holds_out_the_end(tmp_path):
    from winner.data.corpus import read_text_corpus

    path = tmp_path / "all.txt"
    path.write_text(" ".join(f"w{i}" for i in range(100)))
    streams = read_text_corpus(path)
    assert streams["train"] == [f"w{i}" for i in range(90)]
    assert streams["valid"] == [f"w{i}" for i in range(90, 100)]


@pytest.mark.parametrize("files,message", [
    ({}, "no train"), ({"train.txt": "a b"}, "no valid"), ({"train.txt": "a", "valid.txt": ""}, "no tokens"),
    ({"train.txt": "a", "train2.txt": "b", "valid.txt": "c"}, "more than one train"),
])
def test_read_text_corpus_errors(tmp_path, files, message):
    from winner.data.corpus import read_text_corpus

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(WinnerError, match=message):
        read_text_corpus(tmp_path)
    with pytest.raises(WinnerError, match="no such file"):
        read_text_corpus(tmp_path / "absent")


def test_text_vocab_min_count_and_max_size():
    from winner.data.corpus import text_vocab

    train = "a a a b b c".split()
    assert text_vocab(train).itos == [UNK, "a", "b", "c"]
    assert text_vocab(train, min_count=2).itos == [UNK, "a", "b"]
    assert text_vocab(train, max_size=2).itos == [UNK, "a"]
    with pytest.raises(WinnerError, match="max-vocab"):
        text_vocab(train, max_size=1)
