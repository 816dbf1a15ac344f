"""CoNLL NER data: read and write files, convert tag schemes, and load hub datasets into one schema.

A local CoNLL file and a Hugging Face dataset both become a list of `Sentence` (`winner.data.hub`
finds and loads them). Original CoNLL-2003 files are IOB1 (entities start with I-), the
hub's Parquet copies are IOB2; `detect_scheme` tells them apart and `convert_tags` maps between them.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from winner.core.atomic import write_text_atomic
from winner.errors import DataFormatError, WinnerError

if TYPE_CHECKING:
    import datasets

DOCSTART = "-DOCSTART-"
SCHEMES = ("iob1", "iob2", "iobes")
# Placeholder label for the POS and chunk columns of data that has none (2-column files).
NO_LABEL = "-"

_TAG_RE = re.compile(r"O|[BIES]-\S+")
_BILOU = {"L": "E", "U": "S"}  # BILOU's Last and Unit are IOBES's End and Single: BILOU data is read as IOBES
_COLUMN_SEP = re.compile(r"[ \t]+")
_BLANK = re.compile(r"[ \t\r\n]")
_PREFIXES = {"iob1": "BI", "iob2": "BI", "iobes": "BIES"}
_DOCSTART_LINES = {2: f"{DOCSTART} O", 3: f"{DOCSTART} -X- O", 4: f"{DOCSTART} -X- -X- O"}

Span = tuple[str, int, int]  # (entity type, start, end) with end exclusive


@dataclass
class Sentence:
    """One sentence: tokens and NER tags, optional POS and chunk columns, and its document index."""

    tokens: list[str]
    tags: list[str]
    pos: list[str] | None = None
    chunks: list[str] | None = None
    doc: int = 0


# ---------------------------------------------------------------------------------------------- files


def read_text(path: str | Path) -> str:
    """A whole UTF-8 file (gzip-compressed or not) as text; bad bytes raise DataFormatError with the line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WinnerError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise WinnerError(f"{path}: is a directory, expected a file") from None
    if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataFormatError(path, 1, f"not a valid gzip file ({e})") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataFormatError(path, line, f"expected UTF-8 text, found byte {data[e.start]:#04x}") from None


def read_conll(path: str | Path) -> list[Sentence]:
    """Read a CoNLL NER file: `token POS chunk NER` (4 columns), `token POS NER` (3) or `token NER` (2).

    Columns are separated by spaces or tabs, the NER tag is the last column, blank lines end
    sentences. A `-DOCSTART-` line in any variant ends the current document, whether the file puts
    it before each document (CoNLL-2003) or after it (WikiGold); documents are numbered from 0.
    """
    text = read_text(path)
    sentences: list[Sentence] = []
    rows: list[list[str]] = []
    doc = 0
    n_cols = first_line = 0

    def flush() -> None:
        if rows:
            columns = list(zip(*rows, strict=True))
            pos = list(columns[1]) if n_cols >= 3 else None
            chunks = list(columns[2]) if n_cols == 4 else None
            sentences.append(Sentence(list(columns[0]), list(columns[-1]), pos, chunks, doc))
            rows.clear()

    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r").strip(" \t")
        if not line:
            flush()
            continue
        cols = _COLUMN_SEP.split(line)
        if cols[0] == DOCSTART:
            flush()
            # A boundary only counts once the document has sentences, so before- and after-style agree.
            if sentences and sentences[-1].doc == doc:
                doc += 1
            continue
        if not 2 <= len(cols) <= 4:
            raise DataFormatError(
                path, lineno, f"expected 2 to 4 columns (token ... NER tag), found {len(cols)}: {line!r}"
            )
        if not n_cols:
            n_cols, first_line = len(cols), lineno
        elif len(cols) != n_cols:
            raise DataFormatError(
                path,
                lineno,
                f"expected {n_cols} columns as on line {first_line}, found {len(cols)}: {line!r}",
            )
        cols[-1] = bilou_as_iobes(cols[-1])
        if not _TAG_RE.fullmatch(cols[-1]):
            raise DataFormatError(path, lineno, f"expected a tag like O, B-PER, I-LOC, found {cols[-1]!r}")
        rows.append(cols)
    flush()
    if not sentences:
        raise DataFormatError(path, 1, "expected sentences of 'token ... tag' lines, found none")
    return sentences


def bilou_as_iobes(tag: str) -> str:
    """A BILOU tag in IOBES (L-X -> E-X, U-X -> S-X); any other tag unchanged."""
    return _BILOU[tag[0]] + tag[1:] if tag[:2] in ("L-", "U-") else tag


def write_conll(path: str | Path, sentences: Sequence[Sentence], docstart: bool = True) -> None:
    """Write sentences as CoNLL, atomically: 4 columns if every sentence has POS and chunks, 3 with
    POS only, else 2. With `docstart`, a `-DOCSTART-` line goes before each document."""
    write_text_atomic(path, format_conll(sentences, docstart))


def format_conll(sentences: Sequence[Sentence], docstart: bool = True) -> str:
    """The CoNLL text `write_conll` writes."""
    n_cols = 2
    if sentences and all(s.pos is not None for s in sentences):
        n_cols = 4 if all(s.chunks is not None for s in sentences) else 3
    lines: list[str] = []
    prev_doc: int | None = None
    for k, s in enumerate(sentences):
        columns = [s.tokens, s.pos, s.chunks][: n_cols - 1] + [s.tags]
        _check_sentence(k, columns)
        if docstart and s.doc != prev_doc:
            lines += [_DOCSTART_LINES[n_cols], ""]
        prev_doc = s.doc
        lines += [" ".join(fields) for fields in zip(*columns, strict=True)]
        lines.append("")
    return "".join(line + "\n" for line in lines)


def append_column(text: str, sentence_tags: Sequence[Sequence[str]]) -> str:
    """CoNLL `text` (as `read_conll` reads it) with one more column, for conlleval: every token line gets its
    sentence's next tag, a `-DOCSTART-` line gets O (conlleval wants the same number of columns on every
    line), blank lines stay blank, and every other byte of the input is kept."""
    tags = iter(t for seq in sentence_tags for t in seq)
    out = []
    for raw in text.split("\n"):
        line = raw.rstrip("\r").rstrip(" \t")
        if not line.strip():
            out.append(raw)
            continue
        sep = "\t" if "\t" in line else " "
        cr = "\r" if raw.endswith("\r") else ""
        if _COLUMN_SEP.split(line.strip(" \t"))[0] == DOCSTART:
            out.append(f"{line}{sep}O{cr}")
            continue
        tag = next(tags, None)
        if tag is None:
            raise ValueError("fewer tags than token lines")
        out.append(f"{line}{sep}{tag}{cr}")
    if next(tags, None) is not None:
        raise ValueError("more tags than token lines")
    return "\n".join(out)


def _check_sentence(k: int, columns: list) -> None:
    """Refuse what could not be read back the same: empty sentences, ragged columns, blanks in fields."""
    n = len(columns[0])
    if n == 0 or any(len(c) != n for c in columns):
        raise ValueError(
            f"sentence {k}: expected equal, non-zero column lengths, got {[len(c) for c in columns]}"
        )
    for column in columns:
        for field in column:
            if not field or _BLANK.search(field):
                raise ValueError(f"sentence {k}: field {field!r} is empty or contains whitespace")
    if columns[0][0] == DOCSTART:
        raise ValueError(f"sentence {k}: a sentence cannot start with the token {DOCSTART}")
    for tag in columns[-1]:
        if not _TAG_RE.fullmatch(tag):
            raise ValueError(f"sentence {k}: expected a tag like O, B-PER, I-LOC, found {tag!r}")


# ---------------------------------------------------------------------------------------- tag schemes


def tags_to_spans(tags: Sequence[str], scheme: str = "iob1") -> list[Span]:
    """Entity spans (type, start, end exclusive) of a tag sequence in `scheme`.

    One decoder serves all three schemes: B-/S- or a change of type starts an entity, I-/E- of the
    open type continues it, E-/S- close it. An I- that continues nothing starts an entity, as conlleval does.
    """
    _check_scheme(scheme)
    allowed = _PREFIXES[scheme]
    spans: list[Span] = []
    open_type: str | None = None
    start = 0
    for i, tag in enumerate(tags):
        if tag == "O":
            if open_type is not None:
                spans.append((open_type, start, i))
            open_type = None
            continue
        if not _TAG_RE.fullmatch(tag) or tag[0] not in allowed:
            raise ValueError(f"tag {tag!r} at position {i} is not a valid {scheme} tag")
        prefix, kind = tag[0], tag[2:]
        if prefix in "BS" or kind != open_type:
            if open_type is not None:
                spans.append((open_type, start, i))
            open_type, start = kind, i
        if prefix in "ES":
            spans.append((kind, start, i + 1))
            open_type = None
    if open_type is not None:
        spans.append((open_type, start, len(tags)))
    return spans


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str = "iob2") -> list[str]:
    """The tag sequence of `length` tokens that encodes non-overlapping `spans` in `scheme`."""
    _check_scheme(scheme)
    tags = ["O"] * length
    prev_end, prev_type = 0, None
    for kind, start, end in sorted(spans, key=lambda s: s[1]):
        if not (prev_end <= start < end <= length):
            raise ValueError(f"span {(kind, start, end)} overlaps another or lies outside 0..{length}")
        if scheme == "iobes" and end - start == 1:
            tags[start] = f"S-{kind}"
        else:
            # IOB1 only marks a beginning with B- where it touches a preceding entity of the same type.
            touches = start == prev_end and prev_type == kind
            first = "B" if scheme != "iob1" or touches else "I"
            tags[start] = f"{first}-{kind}"
            tags[start + 1 : end] = [f"I-{kind}"] * (end - start - 1)
            if scheme == "iobes":
                tags[end - 1] = f"E-{kind}"
        prev_end, prev_type = end, kind
    return tags


def convert_tags(tags: Sequence[str], src: str, dst: str) -> list[str]:
    """Re-encode a tag sequence from scheme `src` to `dst` (lossless between iob1, iob2 and iobes)."""
    return spans_to_tags(tags_to_spans(tags, src), len(tags), dst)


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of a corpus: any E-/S- means iobes; entities opened by B- (a B- not following its
    own type) mean iob2; otherwise iob1, which includes IO-only data such as WikiGold.

    Entities opened by B- must outnumber those opened by I- (invalid in IOB2): CoNLL-2003 train is IOB1
    but has two stray B- tags, and a single one must not flip the verdict.
    """
    opened = Counter()
    for tags in tag_sequences:
        prev = "O"
        for tag in tags:
            if tag[:2] in ("E-", "S-"):
                return "iobes"
            if tag[:2] in ("B-", "I-") and not (prev[:2] in ("B-", "I-") and prev[2:] == tag[2:]):
                opened[tag[0]] += 1
            prev = tag
    return "iob2" if opened["B"] > opened["I"] else "iob1"


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"tag scheme must be one of {SCHEMES}, got {scheme!r}")


def count_entities(sentences: Iterable[Sentence]) -> dict[str, int]:
    """Entities per type, decoded by seqeval as conlleval reads them (I- after O starts an entity)."""
    from seqeval.metrics.sequence_labeling import get_entities

    counts = Counter(kind for kind, _, _ in get_entities([s.tags for s in sentences]))
    return dict(sorted(counts.items()))


# ------------------------------------------------------------------------------------ hub and datasets


def sentences_to_dataset(sentences: Sequence[Sentence]) -> datasets.Dataset:
    """The hub schema for local sentences: tokens, ClassLabel pos_tags / chunk_tags / ner_tags, and doc.

    Label names are the file's own, sorted, with "O" first. Data without POS or chunk columns gets
    NO_LABEL ("-") for every token, which `sentences_from_dataset` reads back as None. The extra `doc`
    column keeps document boundaries (hub datasets have none; they read back as document 0).
    """
    import datasets

    def filled(column: str) -> list[list[str]]:
        values = [getattr(s, column) for s in sentences]
        if all(v is not None for v in values):
            return values
        return [[NO_LABEL] * len(s.tokens) for s in sentences]

    columns = {
        "pos_tags": filled("pos"),
        "chunk_tags": filled("chunks"),
        "ner_tags": [s.tags for s in sentences],
    }
    features = {"tokens": datasets.Sequence(datasets.Value("string"))}
    data: dict[str, list] = {"tokens": [s.tokens for s in sentences]}
    for name, seqs in columns.items():
        names = sorted({t for seq in seqs for t in seq}, key=lambda t: (t != "O", t))
        index = {t: i for i, t in enumerate(names)}
        features[name] = datasets.Sequence(datasets.ClassLabel(names=names))
        data[name] = [[index[t] for t in seq] for seq in seqs]
    features["doc"] = datasets.Value("int32")
    data["doc"] = [s.doc for s in sentences]
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


def sentences_from_dataset(ds: datasets.Dataset, source: str = "dataset") -> list[Sentence]:
    """Sentences from a dataset with `tokens` and `ner_tags` (optionally `pos_tags`, `chunk_tags`, `doc`).

    Tag columns may hold ClassLabel ids (names are read from the feature) or plain strings.
    """
    missing = [c for c in ("tokens", "ner_tags") if c not in ds.column_names]
    if missing:
        raise WinnerError(f"{source}: expected columns tokens and ner_tags, found {ds.column_names}")
    present = [c for c in ("tokens", "pos_tags", "chunk_tags", "ner_tags", "doc") if c in ds.column_names]
    data = ds.select_columns(present).to_dict()
    tokens = data["tokens"]
    tags = [[bilou_as_iobes(t) for t in seq] for seq in _label_names(ds, "ner_tags", data["ner_tags"], source)]
    for k, seq in enumerate(tags):
        bad = next((t for t in seq if not _TAG_RE.fullmatch(t)), None)
        if bad is not None:
            raise WinnerError(f"{source}: row {k}: expected a tag like O, B-PER, I-LOC, found {bad!r}")
    pos = _label_names(ds, "pos_tags", data.get("pos_tags"), source)
    chunks = _label_names(ds, "chunk_tags", data.get("chunk_tags"), source)
    docs = data.get("doc") or [0] * len(tokens)
    return [
        Sentence(tokens[k], tags[k], pos[k] if pos else None, chunks[k] if chunks else None, docs[k])
        for k in range(len(tokens))
        if tokens[k]  # some hub copies keep empty rows where -DOCSTART- lines were
    ]


def _label_names(
    ds: datasets.Dataset, column: str, values: list | None, source: str
) -> list[list[str]] | None:
    """String labels for a column of ClassLabel ids or strings; None if absent or only NO_LABEL."""
    import datasets

    if values is None:
        return None
    feature = getattr(ds.features[column], "feature", None)
    if isinstance(feature, datasets.ClassLabel):
        names = feature.names
        if names == [NO_LABEL]:
            return None
        return [[names[i] for i in seq] for seq in values]
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        return values
    raise WinnerError(f"{source}: column {column} should hold ClassLabel ids or strings, found {feature}")
