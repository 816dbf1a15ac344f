"""CoNLL reading/writing, tag schemes, and the local-file and hub paths into one dataset schema."""

from __future__ import annotations

import gzip
from pathlib import Path

import datasets
import pytest
from hypothesis import given
from hypothesis import strategies as st

from winner.data import conll, hub
from winner.data.conll import (
    SCHEMES,
    Sentence,
    convert_tags,
    count_entities,
    detect_scheme,
    read_conll,
    sentences_from_dataset,
    sentences_to_dataset,
    spans_to_tags,
    tags_to_spans,
    write_conll,
)
from winner.data.hub import load_ner_dataset, load_sentences
from winner.data.resources import shared_data_dir, wikigold_path
from winner.errors import DataFormatError, WinnerError

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = shared_data_dir()
needs_shared_data = pytest.mark.skipif(
    SHARED is None, reason="../shared/data not found (set WINNER_SHARED_DATA to its location)"
)


# ------------------------------------------------------------------------------------------ reading


def test_read_4_column_conll2003_style():
    sents = read_conll(FIXTURES / "conll2003_sample.txt")
    assert [s.doc for s in sents] == [0, 0, 1, 1]
    assert sents[0].tokens == ["Acme", "hires", "Dutch", "engineers", "in", "Lyon", "."]
    assert sents[0].tags == ["I-ORG", "O", "I-MISC", "O", "O", "I-LOC", "O"]
    assert sents[0].pos == ["NNP", "VBZ", "JJ", "NNS", "IN", "NNP", "."]
    assert sents[0].chunks == ["B-NP", "B-VP", "B-NP", "I-NP", "B-PP", "B-NP", "O"]
    assert sents[3].tags[1:3] == ["I-LOC", "B-LOC"]
    assert all("-DOCSTART-" not in s.tokens for s in sents)


def test_read_2_column_with_docstart_after_each_document():
    sents = read_conll(FIXTURES / "wikigold_sample.txt")
    assert [s.doc for s in sents] == [0, 1, 1]
    assert sents[0].pos is None and sents[0].chunks is None
    assert sents[2].tokens == ["It", "toured", "Europe", "with", "Anna", "Berg", "."]


def test_read_crlf_tabs_and_docstart_variants():
    raw = (FIXTURES / "crlf_tabs.txt").read_bytes()
    assert b"\r\n" in raw, "the fixture lost its CRLF line endings (check git's eol settings)"
    sents = read_conll(FIXTURES / "crlf_tabs.txt")
    assert [(s.tokens, s.tags, s.doc) for s in sents] == [
        (["Acme", "hires"], ["I-ORG", "O"], 0),
        (["Maria", "Lopez"], ["I-PER", "I-PER"], 1),
    ]
    assert sents[1].pos == ["NNP", "NNP"] and sents[1].chunks == ["B-NP", "I-NP"]


def test_read_gzip(tmp_path):
    path = tmp_path / "sample.txt.gz"
    path.write_bytes(gzip.compress((FIXTURES / "conll2003_sample.txt").read_bytes()))
    assert read_conll(path) == read_conll(FIXTURES / "conll2003_sample.txt")


@pytest.mark.parametrize(
    ("name", "line", "detail"),
    [
        ("bad_one_column.txt", 2, "expected 2 to 4 columns"),
        ("bad_column_count.txt", 4, "expected 4 columns as on line 1, found 2"),
        ("bad_tag.txt", 2, "expected a tag like O, B-PER, I-LOC, found 'FOO'"),
        ("bad_no_sentences.txt", 1, "found none"),
        ("bad_latin1.txt", 3, "expected UTF-8 text, found byte 0xfc"),
    ],
)
def test_malformed_files_name_path_and_line(name, line, detail):
    path = FIXTURES / name
    with pytest.raises(DataFormatError) as info:
        read_conll(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert detail in str(info.value)


def test_missing_file_is_a_winner_error(tmp_path):
    with pytest.raises(WinnerError, match="no such file"):
        read_conll(tmp_path / "absent.conll")


def test_bad_gzip_is_a_format_error(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(b"Acme I-ORG\n" * 100)[:30])
    with pytest.raises(DataFormatError, match="gzip"):
        read_conll(path)


# ------------------------------------------------------------------------------------------ writing


@pytest.mark.parametrize("name", ["conll2003_sample.txt", "wikigold_sample.txt", "crlf_tabs.txt"])
def test_write_read_round_trip(tmp_path, name):
    sents = read_conll(FIXTURES / name)
    out = tmp_path / "nested" / "out.conll"
    write_conll(out, sents)
    assert read_conll(out) == sents
    write_conll(out, read_conll(out))
    assert read_conll(out) == sents


def test_write_column_count_and_docstart():
    sents = read_conll(FIXTURES / "wikigold_sample.txt")
    text_lines = _written(sents).splitlines()
    assert text_lines[:3] == ["-DOCSTART- O", "", "Blue I-MISC"]
    four = _written(read_conll(FIXTURES / "conll2003_sample.txt")).splitlines()
    assert four[:3] == ["-DOCSTART- -X- -X- O", "", "Acme NNP B-NP I-ORG"]
    assert "-DOCSTART-" not in _written(sents, docstart=False)


def _written(sents, docstart=True) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.conll"
        write_conll(path, sents, docstart=docstart)
        return path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "bad",
    [
        Sentence(["two words"], ["O"]),
        Sentence(["a", "b"], ["O"]),
        Sentence([], []),
        Sentence(["a"], ["PER"]),
    ],
)
def test_write_refuses_what_cannot_be_read_back(tmp_path, bad):
    with pytest.raises(ValueError):
        write_conll(tmp_path / "x.conll", [bad])
    assert not (tmp_path / "x.conll").exists()


# -------------------------------------------------------------------------------------- tag schemes


def test_convert_known_example():
    iob1 = ["I-LOC", "B-LOC", "O", "I-ORG", "I-ORG", "I-PER", "O", "I-MISC"]
    assert convert_tags(iob1, "iob1", "iob2") == [
        "B-LOC",
        "B-LOC",
        "O",
        "B-ORG",
        "I-ORG",
        "B-PER",
        "O",
        "B-MISC",
    ]
    assert convert_tags(iob1, "iob1", "iobes") == [
        "S-LOC",
        "S-LOC",
        "O",
        "B-ORG",
        "E-ORG",
        "S-PER",
        "O",
        "S-MISC",
    ]
    assert convert_tags(convert_tags(iob1, "iob1", "iobes"), "iobes", "iob1") == iob1


def test_convert_rejects_tags_outside_the_source_scheme():
    with pytest.raises(ValueError, match="not a valid iob1 tag"):
        convert_tags(["S-PER"], "iob1", "iob2")
    with pytest.raises(ValueError, match="scheme"):
        convert_tags(["O"], "bilou", "iob2")


def test_detect_scheme():
    assert detect_scheme([["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]]) == "iob1"
    assert detect_scheme([["O", "O"], ["I-MISC", "O"]]) == "iob1"  # IO data
    assert detect_scheme([["B-PER", "I-PER", "O", "B-LOC"]]) == "iob2"
    assert detect_scheme([["B-PER", "E-PER"], ["O"]]) == "iobes"
    assert detect_scheme([["O", "S-LOC"]]) == "iobes"
    # A stray B- in IOB1 data (CoNLL-2003 train has two) does not outvote the I- openings.
    assert detect_scheme([["I-PER", "O", "I-LOC", "O", "B-MISC", "I-MISC"]]) == "iob1"
    assert detect_scheme([]) == "iob1"


TYPES = ["PER", "LOC", "ORG"]


@st.composite
def spans_and_length(draw):
    """Non-overlapping spans over a short sentence, often adjacent and of the same type."""
    spans, pos = [], 0
    for _ in range(draw(st.integers(0, 6))):
        pos += draw(st.integers(0, 2))
        width = draw(st.integers(1, 3))
        spans.append((draw(st.sampled_from(TYPES)), pos, pos + width))
        pos += width
    return spans, pos + draw(st.integers(0, 2))


@given(spans_and_length(), st.sampled_from(SCHEMES))
def test_spans_survive_every_scheme(sl, scheme):
    spans, length = sl
    tags = spans_to_tags(spans, length, scheme)
    assert len(tags) == length
    assert tags_to_spans(tags, scheme) == spans


@given(spans_and_length())
def test_iob1_iob2_iobes_iob1_round_trip(sl):
    iob1 = spans_to_tags(*sl, "iob1")
    iob2 = convert_tags(iob1, "iob1", "iob2")
    iobes = convert_tags(iob2, "iob2", "iobes")
    assert convert_tags(iobes, "iobes", "iob1") == iob1
    assert detect_scheme([iobes]) == "iobes" or not sl[0]


def test_count_entities_reads_iob1_like_conlleval():
    sents = read_conll(FIXTURES / "conll2003_sample.txt")
    assert count_entities(sents) == {"LOC": 4, "MISC": 1, "ORG": 2, "PER": 1}


# ---------------------------------------------------------------------------------- datasets schema


def test_local_file_to_dataset_schema():
    ds = load_ner_dataset(str(FIXTURES / "conll2003_sample.txt"))
    assert isinstance(ds, datasets.Dataset)
    assert ds.features["tokens"].feature == datasets.Value("string")
    for column in ("pos_tags", "chunk_tags", "ner_tags"):
        assert isinstance(ds.features[column].feature, datasets.ClassLabel)
    assert ds.features["ner_tags"].feature.names == ["O", "B-LOC", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    assert sentences_from_dataset(ds) == read_conll(FIXTURES / "conll2003_sample.txt")


def test_two_column_file_gets_placeholder_pos_and_chunks():
    ds = load_ner_dataset(str(FIXTURES / "wikigold_sample.txt"))
    assert ds.features["pos_tags"].feature.names == [conll.NO_LABEL]
    assert ds.features["chunk_tags"].feature.names == [conll.NO_LABEL]
    sents = sentences_from_dataset(ds)
    assert sents == read_conll(FIXTURES / "wikigold_sample.txt")
    assert sents[0].pos is None


def test_dataset_keeps_documents():
    sents = read_conll(FIXTURES / "conll2003_sample.txt")
    ds = sentences_to_dataset(sents)
    assert list(ds["doc"]) == [0, 0, 1, 1]
    assert [s.doc for s in sentences_from_dataset(ds.remove_columns("doc"))] == [0, 0, 0, 0]


def test_load_sentences_local_path_equals_read_conll():
    path = FIXTURES / "crlf_tabs.txt"
    assert load_sentences(str(path)) == read_conll(path)


def _hub_like() -> datasets.Dataset:
    """Shaped like the hub's Parquet conll2003: IOB2 ClassLabels, ids, a -DOCSTART- row left empty."""
    ner = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("string")),
            "pos_tags": datasets.Sequence(datasets.ClassLabel(names=["NN", "NNP", "VBZ"])),
            "chunk_tags": datasets.Sequence(datasets.ClassLabel(names=["O", "B-NP", "B-VP"])),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=ner)),
        }
    )
    rows = {
        "id": ["0", "1", "2"],
        "tokens": [["Maria", "Lopez", "visits", "Acme"], [], ["Oslo"]],
        "pos_tags": [[1, 1, 2, 1], [], [1]],
        "chunk_tags": [[1, 1, 2, 1], [], [1]],
        "ner_tags": [[1, 2, 0, 3], [], [5]],
    }
    return datasets.Dataset.from_dict(rows, features=features)


HUB_SENTENCES = [
    Sentence(["Maria", "Lopez", "visits", "Acme"], ["B-PER", "I-PER", "O", "B-ORG"],
             ["NNP", "NNP", "VBZ", "NNP"], ["B-NP", "B-NP", "B-VP", "B-NP"]),
    Sentence(["Oslo"], ["B-LOC"], ["NNP"], ["B-NP"]),
]  # fmt: skip


def test_hub_schema_in_memory():
    sents = sentences_from_dataset(_hub_like())
    assert sents == HUB_SENTENCES
    assert detect_scheme(s.tags for s in sents) == "iob2"


def test_hub_schema_through_parquet(tmp_path):
    path = tmp_path / "train.parquet"
    _hub_like().to_parquet(str(path))
    ds = datasets.load_dataset(
        "parquet", data_files={"train": str(path)}, split="train", cache_dir=str(tmp_path / "cache")
    )
    assert isinstance(ds.features["ner_tags"].feature, datasets.ClassLabel)
    assert sentences_from_dataset(ds) == HUB_SENTENCES


def test_string_tag_columns():
    ds = datasets.Dataset.from_dict({"tokens": [["Acme", "rises"]], "ner_tags": [["B-ORG", "O"]]})
    assert sentences_from_dataset(ds) == [Sentence(["Acme", "rises"], ["B-ORG", "O"])]


def test_dataset_without_ner_column_or_with_bad_tags():
    with pytest.raises(WinnerError, match="expected columns tokens and ner_tags"):
        sentences_from_dataset(datasets.Dataset.from_dict({"tokens": [["a"]], "tags": [["O"]]}))
    with pytest.raises(WinnerError, match="found 'PER'"):
        sentences_from_dataset(datasets.Dataset.from_dict({"tokens": [["a"]], "ner_tags": [["PER"]]}))


def test_hub_name_goes_through_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        return _hub_like()

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    assert load_sentences("someone/conll2003-parquet", "validation") == HUB_SENTENCES
    assert calls == [("someone/conll2003-parquet", "validation")]


def test_hub_failure_is_one_winner_error(monkeypatch):
    def offline(name, split):
        raise ConnectionError("Couldn't reach 'someone/ner' on the Hub (LocalEntryNotFoundError)\nmore text")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    with pytest.raises(WinnerError) as info:
        load_sentences("someone/ner")
    message = str(info.value)
    assert "could not load dataset 'someone/ner'" in message
    assert "pass a local path" in message
    assert "\n" not in message


def test_missing_local_path_is_not_sent_to_the_hub(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("went to the hub"))
    with pytest.raises(WinnerError, match="no such file"):
        load_sentences("data/absent.conll")


# ------------------------------------------------------------------------------------- shared corpora


CONLL_COUNTS = {
    "train": (14041, 203621, {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}),
    "valid": (3250, 51362, {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}),
    "test": (3453, 46435, {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}),
}


@pytest.mark.shared_data
@needs_shared_data
@pytest.mark.parametrize("split", list(CONLL_COUNTS))
def test_conll2003_counts(split):
    sents = read_conll(SHARED / "conll2003" / f"{split}.txt")
    n_sents, n_tokens, entities = CONLL_COUNTS[split]
    assert len(sents) == n_sents
    assert sum(len(s.tokens) for s in sents) == n_tokens
    assert count_entities(sents) == entities
    assert detect_scheme(s.tags for s in sents) == "iob1"


@pytest.mark.shared_data
@needs_shared_data
def test_wikigold_counts():
    sents = read_conll(SHARED / "wikigold" / "wikigold.conll.txt")
    assert len(sents) == 1696
    assert sum(len(s.tokens) for s in sents) == 39007
    assert sorted({s.doc for s in sents}) == list(range(145))
    assert detect_scheme(s.tags for s in sents) == "iob1"


@pytest.mark.shared_data
@needs_shared_data
def test_wikigold_round_trip(tmp_path):
    sents = read_conll(SHARED / "wikigold" / "wikigold.conll.txt")
    write_conll(tmp_path / "out.conll", sents)
    assert read_conll(tmp_path / "out.conll") == sents


WIKIGOLD_SPLITS = {"train": (117, 1330, 31251), "dev": (10, 193, 4329), "test": (18, 173, 3427)}


@pytest.mark.parametrize("split", list(WIKIGOLD_SPLITS))
def test_shipped_wikigold_splits(split):
    """The counts data/README.md documents for scripts/prepare_data.py's split."""
    sents = read_conll(wikigold_path(split))
    n_docs, n_sents, n_tokens = WIKIGOLD_SPLITS[split]
    assert sorted({s.doc for s in sents}) == list(range(n_docs))
    assert (len(sents), sum(len(s.tokens) for s in sents)) == (n_sents, n_tokens)
    assert detect_scheme(s.tags for s in sents) == "iob1"


def test_bilou_is_read_as_iobes(tmp_path):
    path = tmp_path / "bilou.txt"
    path.write_text("John B-PER\nSmith L-PER\nin O\nParis U-LOC\n")
    assert read_conll(path)[0].tags == ["B-PER", "E-PER", "O", "S-LOC"]
    ds = datasets.Dataset.from_dict({"tokens": [["Paris"]], "ner_tags": [["U-LOC"]]})
    assert sentences_from_dataset(ds)[0].tags == ["S-LOC"]
