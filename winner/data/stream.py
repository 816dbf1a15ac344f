"""Read text to tag as a stream of records: files, directories and globs, gzip or not, whole or by byte range.

A record is what the output writes as one unit: a line of raw text (a `str`, one or more sentences), or one
CoNLL sentence with every line it came with (`ConllBlock`), so that the output can give the file back whole.
Nothing here holds more than one record: tagging a corpus of any size needs memory for the model and one
batch. Byte ranges end on record boundaries (`boundary`), so reading a file piece by piece yields exactly the
records reading it whole does; distributed tagging relies on that.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from winner.data.conll import DOCSTART, bilou_as_iobes, detect_scheme
from winner.errors import DataFormatError, WinnerError

INPUT_FORMATS = ("auto", "text", "conll")
STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"
_BLANK = b" \t\r\n"
_BLANK_STR = " \t\r\n"
_COLUMNS = re.compile(r"[ \t]+")
_COLUMNS_BYTES = re.compile(rb"[ \t]+")
_TAG = re.compile(r"O|[BIES]-[A-Za-z]\S*")  # an entity type starts with a letter: "I-9" ends text, not a tag
_SNIFF_LINES = 50


@dataclass(frozen=True)
class Source:
    """One input file (or standard input) and how to read it: `text` (sentences, a line at a time) or `conll`,
    with a CoNLL file's tag scheme (what its predicted tags are written in)."""

    path: str
    format: str
    scheme: str = ""
    paragraphs: bool = False  # raw text: lines up to a blank line form one document (else each line is one)

    @property
    def gzipped(self) -> bool:
        return self.path != STDIN and Path(self.path).is_file() and _is_gzip(self.path)


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files in order: a file as given, a directory's files (recursively, sorted, hidden ones skipped), a
    glob's matches (sorted), or `-` alone for standard input."""
    if STDIN in inputs:
        if len(inputs) > 1:
            raise WinnerError("- (standard input) cannot be combined with other inputs")
        return [STDIN]
    paths: list[str] = []
    for spec in inputs:
        p = Path(spec)
        if p.exists() and not p.is_dir():  # a file, or a device or pipe: /dev/stdin, <(...)
            paths.append(spec)
        elif p.is_dir():
            paths.extend(str(f) for f in sorted(p.rglob("*"))
                         if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            matches = sorted(m for m in glob.glob(spec, recursive=True) if Path(m).is_file())
            if not matches:
                raise WinnerError(f"{spec}: no such file, directory or matching files")
            paths.extend(matches)
    if not paths:
        raise WinnerError(f"{' '.join(inputs)}: no input files")
    return paths


def resolve_sources(inputs: list[str], input_format: str, paragraphs: bool = False) -> list[Source]:
    """Each input file with its format; `auto` sniffs the first lines of each file (CoNLL if every one of
    them is `token ... tag` or -DOCSTART-, else text). `paragraphs`: raw text's documents end at blank lines."""
    sources = []
    for path in expand_inputs(inputs):
        fmt = input_format
        stream = path == STDIN or not Path(path).is_file()  # a pipe or device is read once: never sniffed
        if stream and fmt == "conll":
            raise WinnerError(f"{path}: --input-format conll needs a regular file, not standard input or a pipe")
        if fmt == "auto":
            fmt = "text" if stream else sniff_format(path)
        sources.append(Source(path, fmt, conll_scheme(path) if fmt == "conll" else "", paragraphs and fmt == "text"))
    return sources


def conll_scheme(path: str) -> str:
    """The tag scheme of a CoNLL file, as `read_conll` + `detect_scheme` see it, from one streamed pass."""
    return detect_scheme(block.tags for block in read_source(Source(path, "conll", "iob1")))


def sniff_format(path: str) -> str:
    with open_binary(path) as f:
        lines = []
        for raw in f:
            line = raw.strip(_BLANK)
            if line:
                lines.append(line.decode("utf-8", "replace").removeprefix("\ufeff"))
            if len(lines) >= _SNIFF_LINES:
                break
    # CoNLL: every line has 2-4 columns and all but a few end in a tag (one bad tag must not make it text)
    tagged = sum(_conll_like(line) for line in lines)
    columns_ok = all(2 <= len(_COLUMNS.split(line)) <= 4 or line.startswith(DOCSTART) for line in lines)
    return "conll" if columns_ok and tagged and len(lines) - tagged <= max(1, len(lines) // 10) else "text"


def _conll_like(line: str) -> bool:
    cols = _COLUMNS.split(line)
    return cols[0] == DOCSTART or (2 <= len(cols) <= 4 and bool(_TAG.fullmatch(cols[-1])))


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_binary(path: str) -> BinaryIO:
    """A file's bytes, decompressed if it is gzip (whatever it is called)."""
    if path == STDIN:
        return sys.stdin.buffer
    try:
        f = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise WinnerError(f"{path}: no such file") from None
    if f.peek(2)[:2] == GZIP_MAGIC:
        return gzip.open(f)  # type: ignore[return-value]
    return f


@dataclass(frozen=True)
class ConllBlock:
    """One CoNLL sentence as the file has it: `text`, its lines (with their line ends, and the blank or
    -DOCSTART- lines after it), its tokens and gold tags (BILOU read as IOBES), and the file's tag `scheme`.
    The blank or -DOCSTART- lines that start a file are a block of their own, without tokens. `ends_document`:
    a -DOCSTART- line follows its tokens, or the stream ends with it (documents as `read_conll` numbers them)."""

    text: str
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    scheme: str
    ends_document: bool = True


Record = str | ConllBlock


def records(stream: BinaryIO, source: Source, file_start: bool = True) -> Iterator[Record]:
    """The records of a binary stream of UTF-8 text: every non-blank line (`text`), or every CoNLL sentence
    with the lines around it. `file_start`: the stream starts at the beginning of a file (where a byte-order
    mark is dropped)."""
    lines = _lines(stream, source.path, file_start)
    if source.format == "text" and not source.paragraphs:
        for line in lines:
            yield from (part for part in line.splitlines() if part.strip())
        return
    if source.format == "text":
        yield from _paragraph_lines(lines)
        return
    text: list[str] = []
    rows: list[list[str]] = []
    ended = False  # the lines so far end in a blank or -DOCSTART- line
    docstart = False  # a -DOCSTART- line came after the rows so far
    for line in lines:
        cols = _COLUMNS.split(line.strip(_BLANK_STR))
        is_row = bool(cols[0]) and cols[0] != DOCSTART
        if is_row and ended:
            yield _block(text, rows, source.scheme, docstart)
            text, rows, docstart = [], [], False
        if is_row:
            rows.append(cols)
        docstart = docstart or cols[0] == DOCSTART
        ended = not is_row
        text.append(line)
    if text:
        yield _block(text, rows, source.scheme, True)


class TextLine(str):
    """A line of raw text read by paragraphs: `ends_document` says whether a blank line, or the end of the
    stream, follows it."""

    ends_document: bool


def _text_line(text: str, ends_document: bool) -> TextLine:
    line = TextLine(text)
    line.ends_document = ends_document
    return line


def _paragraph_lines(lines: Iterator[str]) -> Iterator[TextLine]:
    """The non-blank lines of raw text (as `records` cuts them), each saying whether its paragraph ends with it."""
    held: str | None = None
    for line in lines:
        parts = [part for part in line.splitlines() if part.strip()]
        if not parts and held is not None:
            yield _text_line(held, True)
            held = None
        for part in parts:
            if held is not None:
                yield _text_line(held, False)
            held = part
    if held is not None:
        yield _text_line(held, True)


def _blank_text(line: bytes) -> bool:
    """A line `records` reads as blank (paragraphs end there): nothing but white space, as str.strip sees it."""
    return not line.decode("utf-8", "replace").strip()


def _block(text: list[str], rows: list[list[str]], scheme: str, ends_document: bool) -> ConllBlock:
    return ConllBlock("".join(text), tuple(r[0] for r in rows), tuple(bilou_as_iobes(r[-1]) for r in rows), scheme,
                      ends_document)


def _lines(stream: BinaryIO, name: str, file_start: bool) -> Iterator[str]:
    """Decoded lines (split on \\n only, as byte ranges are), with the file and line of a bad byte."""
    lineno = 0
    try:
        for lineno, raw in enumerate(stream, 1):
            line = raw.decode("utf-8")
            if "\x00" in line:
                raise DataFormatError(name, lineno, "expected text, found a NUL byte (a binary file?)")
            yield line.removeprefix("\ufeff") if lineno == 1 and file_start else line
    except UnicodeDecodeError as e:
        raise DataFormatError(name, lineno, f"expected UTF-8 text, found byte {e.object[e.start]:#04x}") from None
    except (OSError, EOFError) as e:  # a truncated or corrupt gzip file
        raise DataFormatError(name, lineno + 1, f"could not read the file ({e})") from None


def read_source(source: Source) -> Iterator[Record]:
    """Every record of one input, streamed."""
    stream = open_binary(source.path)
    try:
        yield from records(stream, source)
    finally:
        if source.path != STDIN:
            stream.close()


# ------------------------------------------------------------------ byte ranges


@dataclass(frozen=True)
class Chunk:
    """Bytes [start, end) of input file `source` (a gzip file is always one whole chunk, end = -1)."""

    index: int
    source: int
    start: int
    end: int


def boundary(f: BinaryIO, target: int, fmt: str, documents: bool = False) -> int:
    """The first record boundary at or after byte `target` of a seekable, uncompressed file: the start of a
    line (text), or the start of the first token line after a blank line and any blank or -DOCSTART- lines
    following it (CoNLL, where those lines belong to the sentence before). With `documents`, so that a chunk holds
    whole documents: a CoNLL file is cut after a -DOCSTART- line (and any blank or -DOCSTART- lines after it), and
    text read by paragraphs at the first non-blank line after a blank one. The file's size if there is none."""
    if target <= 0:
        return 0
    f.seek(target - 1)
    f.readline()  # the rest of the line holding byte target - 1
    if fmt == "text" and not documents:
        return f.tell()
    if fmt == "text":  # paragraphs: the first non-blank line after a blank one
        while (line := f.readline()) and not _blank_text(line):
            pass
        while True:
            start = f.tell()
            line = f.readline()
            if not line or not _blank_text(line):
                return start
    while line := f.readline():
        first = _COLUMNS_BYTES.split(line.strip(_BLANK), 1)[0]
        if (first == DOCSTART.encode()) if documents else not first:
            break
    while True:
        start = f.tell()
        line = f.readline()
        first = _COLUMNS_BYTES.split(line.strip(_BLANK), 1)[0]
        if not line or (first and first != DOCSTART.encode()):
            return start


TAIL_SPLIT = 4  # the input's tail is cut into pieces this many times smaller


def plan_chunks(sources: list[Source], chunk_bytes: int, tail_bytes: int = 0, documents: bool = False) -> list[Chunk]:
    """Cut every input into pieces of about `chunk_bytes`, on sentence boundaries (with `documents`, a CoNLL file
    on document boundaries: a file without -DOCSTART- lines stays whole), in input order; the last `tail_bytes`
    of all the (uncompressed) input into pieces TAIL_SPLIT times smaller, so that workers taking chunks from a
    queue run out of work at nearly the same moment."""
    for source in sources:
        if source.path == STDIN or not Path(source.path).is_file():
            raise WinnerError(f"{source.path}: standard input or a pipe cannot be split into chunks: pass files")
    sizes = [0 if s.gzipped else os.path.getsize(s.path) for s in sources]
    chunks: list[Chunk] = []
    left = sum(sizes)  # bytes from the start of this file to the end of the input
    for k, (source, size) in enumerate(zip(sources, sizes, strict=True)):
        if source.gzipped:
            chunks.append(Chunk(len(chunks), k, 0, -1))
            continue
        targets = _chunk_targets(size, left, chunk_bytes, tail_bytes)
        left -= size
        cuts = [0]
        with open(source.path, "rb") as f:
            for t in targets:
                if t >= cuts[-1]:  # a target inside the last piece found would find its end again
                    cuts.append(boundary(f, t, source.format, documents and (source.format == "conll"
                                                                             or source.paragraphs)))
                if cuts[-1] >= size:
                    break
        cuts = sorted({*cuts, size})
        base = len(chunks)
        chunks.extend(Chunk(base + i, k, a, b) for i, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)))
    return chunks


def _chunk_targets(size: int, left: int, chunk_bytes: int, tail_bytes: int) -> Iterator[int]:
    """Byte offsets to cut a file of `size` bytes at, `left` bytes of input remaining from its start."""
    t = 0
    while True:
        t += chunk_bytes if left - t > tail_bytes else max(1, chunk_bytes // TAIL_SPLIT)
        if t >= size:
            return
        yield t


def read_chunk(source: Source, chunk: Chunk) -> bytes:
    """The raw bytes of one chunk (still gzip-compressed for a gzip file)."""
    with open(source.path, "rb") as f:
        if chunk.end < 0:
            return f.read()
        f.seek(chunk.start)
        return f.read(chunk.end - chunk.start)


def chunk_records(data: bytes, source: Source, file_start: bool = True) -> Iterator[Record]:
    """The records of one chunk's bytes of `source` (`file_start`: the chunk starts its file)."""
    stream: BinaryIO = io.BytesIO(data)
    if data[:2] == GZIP_MAGIC:
        stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
    yield from records(stream, source, file_start)
