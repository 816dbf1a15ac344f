"""Tag a stream of records (winner.data.stream) in bounded batches and write them as they are tagged.

Memory holds the model and one batch of about `batch_tokens` tokens (or one longer document), whatever the
input's size. A record is tokenised and tagged as the Python API does it (winner.heads.docs): raw text with
character offsets, cut into sentences. The CoNLL writer needs neither offsets nor entities, so for it a batch is
token strings and sentence lengths (`Split`, from the whole-line tokeniser), the same tags found with no Python
object per token. For document codes a line of text is a document (or, read by paragraphs, the lines up to a blank
one), and a CoNLL file's sentences are grouped into documents by its -DOCSTART- lines, as `winner ner evaluate`
reads them. A sentence's tags depend only on its
document (`Tagger.predict_scored` with a fixed method is row-wise, and a batch or a chunk ends only where a
document does), so any cut of the input into batches or chunks gives the same output, byte for byte.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TextIO, TypeVar

import numpy as np

from winner.core.console import progress_bar
from winner.core.mlp import LOOKUP_TABLE_BYTES
from winner.data.stream import STDIN, Record, Source, chunk_records, read_source
from winner.data.text import model_forms, split_line
from winner.errors import WinnerError
from winner.heads.docs import Prepared, prepare, tag_prepared
from winner.heads.model_io import resolve_model_dir
from winner.heads.tagger import DocumentPieces, Tagger
from winner.heads.writers import WRITERS, ConllWriter, SentenceWriter

BATCH_TOKENS = 1 << 15
BIG_VOCABULARY_BATCHES = 4  # batches this many times bigger for a model with no whole-vocabulary table


@dataclass
class TagCounts:
    """What a tagging job did: records written (text lines, CoNLL sentences) and their tokens, seconds taken."""

    sentences: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, other: TagCounts) -> None:
        self.sentences += other.sentences
        self.tokens += other.tokens

    @property
    def words_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def writer_class(output_format: str) -> type[SentenceWriter]:
    try:
        return WRITERS[output_format]
    except KeyError:
        raise WinnerError(f"unknown output format {output_format!r}: expected one of {', '.join(WRITERS)}") from None


def batch_tokens(tagger: Tagger) -> int:
    """Tokens per batch. A model whose first-layer table for its whole vocabulary would not fit
    LOOKUP_TABLE_BYTES (one with the shipped GloVe vectors, for instance) builds one per batch for the batch's
    distinct words, which grow slower than the batch: bigger batches need fewer rows per token, and memory
    stays bounded."""
    c = tagger.model.config
    if c.hidden and tagger.stable_method == "lookup":
        if c.vocab_size * c.n_positions * c.hidden[0] * tagger.model.dtype.itemsize > LOOKUP_TABLE_BYTES:
            return BATCH_TOKENS * BIG_VOCABULARY_BATCHES
    return BATCH_TOKENS


@dataclass
class Pending:
    """A record waiting in a batch, tokenised; its length is its number of tokens."""

    record: Record
    prepared: Prepared

    def __len__(self) -> int:
        return len(self.prepared[1])


def pending(records: Iterable[Record]) -> Iterator[Pending]:
    """Records tokenised: text by the offsets tokenizer, a CoNLL sentence's tokens as they are."""
    for r in records:
        yield Pending(r, prepare(r if isinstance(r, str) else list(r.tokens)))


_Item = TypeVar("_Item", bound=Sized)


def batches(items: Iterable[_Item], max_tokens: int = BATCH_TOKENS) -> Iterator[tuple[list[_Item], list[int]]]:
    """Consecutive records grouped into lists of about `max_tokens` tokens, each with its records' document ids.
    A batch ends only where a document does (a line of text is a document, or its paragraph is when read by
    paragraphs; CoNLL sentences are grouped by their file's -DOCSTART- lines; a long document is cut as
    DocumentPieces cuts it), so a record's tags never depend on where the batches fall; a longer document goes
    alone."""
    batch: list[_Item] = []
    documents: list[int] = []
    pieces = DocumentPieces()
    n = document = 0
    for item in items:
        batch.append(item)
        documents.append(document)
        n += len(item)
        if pieces.ends(len(item), getattr(item.record, "ends_document", True)):  # type: ignore[attr-defined]
            document += 1
            if n >= max_tokens:
                yield batch, documents
                batch, documents, n = [], [], 0
    if batch:
        yield batch, documents


@dataclass
class Split:
    """A record waiting in a batch as token strings cut into sentences (`lengths`), for a writer that needs no
    Doc (ConllWriter): what `Pending` holds, without offsets, entities or a Python object per token."""

    record: Record
    tokens: list[str]
    lengths: list[int]

    def __len__(self) -> int:
        return len(self.tokens)


def split_records(records: Iterable[Record]) -> Iterator[Split]:
    """Records as `Split`s: raw text through `split_line`, a CoNLL sentence's tokens as they are (refused as
    `prepare` refuses them)."""
    for r in records:
        if isinstance(r, str):
            yield Split(r, *split_line(r))
            continue
        tokens = list(r.tokens)
        if len(" ".join(tokens).split()) != len(tokens):
            prepare(tokens)  # raises, naming the token that is empty or holds a space
        yield Split(r, tokens, [len(tokens)] if tokens else [])


def tag_split(tagger: Tagger, batch: list[Split], documents: list[int], method: str, writer: ConllWriter) -> None:
    """Tag a batch of split records (`documents`: each one's document id) in one model call and write them:
    Tagger.predict_flat on the same sentences as `tag_prepared` gives Tagger.predict_scored, so the same tags."""
    forms = model_forms(list(chain.from_iterable(item.tokens for item in batch)))
    offsets = np.zeros(sum(len(item.lengths) for item in batch) + 1, np.int64)
    np.cumsum([n for item in batch for n in item.lengths], out=offsets[1:])
    bounds = offsets.tolist()
    sentences = [forms[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    per_sentence = [documents[k] for k, item in enumerate(batch) for _ in item.lengths]
    tags = tagger.predict_flat(sentences, offsets, method=method, documents=per_sentence)[0] if sentences else []
    pos = 0
    for item in batch:
        writer.write_tagged(item.record, item.tokens, tags[pos : pos + len(item)])
        pos += len(item)


def tag_into(tagger: Tagger, records: Iterable[Record], writer: SentenceWriter,
             on_batch: Callable[[int], None] | None = None) -> TagCounts:
    """Tag every record and hand it to `writer` (opened and closed here), batch by batch."""
    counts = TagCounts()
    t0 = time.perf_counter()
    method = tagger.stable_method
    writer.open()
    light = isinstance(writer, ConllWriter)
    for batch, documents in batches(split_records(records) if light else pending(records), batch_tokens(tagger)):
        if light:
            tag_split(tagger, batch, documents, method, writer)  # type: ignore[arg-type]
        else:
            docs = tag_prepared(tagger, [item.prepared for item in batch], method, documents)
            for item, doc in zip(batch, docs, strict=True):
                writer.write(item.record, doc)
        n = sum(len(item) for item in batch)
        counts.sentences += sum(1 for item in batch if len(item))
        counts.tokens += n
        if on_batch is not None:
            on_batch(n)
    writer.close()
    counts.seconds = time.perf_counter() - t0
    return counts


def tag_sources(tagger: Tagger, sources: list[Source], out: TextIO, output_format: str,
                on_batch: Callable[[int], None] | None = None) -> TagCounts:
    """Tag every input in order into one output stream."""
    writer = writer_class(output_format)(out, tagger.spec.output_scheme)
    return tag_into(tagger, (s for source in sources for s in read_source(source)), writer, on_batch)


def tag_chunk(tagger: Tagger, data: bytes, source: Source, out: TextIO, output_format: str,
              file_start: bool = True) -> TagCounts:
    """Tag one chunk's bytes of `source` into its body: records numbered from 0, no header or footer (see
    writers.join)."""
    writer = writer_class(output_format)(out, tagger.spec.output_scheme, body_only=True)
    return tag_into(tagger, chunk_records(data, source, file_start), writer)


def tag_files(model_dir: str | Path, sources: list[Source], out: str, output_format: str,
              quiet: bool = False, consistency: str | None = None) -> TagCounts:
    """Load a tagger and tag `sources` into file `out` (or standard output for `-`), writing as it goes;
    `consistency` replaces the model's own."""
    t0 = time.perf_counter()
    writer_class(output_format)  # refuse an unknown format before loading the model
    tagger = Tagger.load(resolve_model_dir(model_dir), consistency)
    with contextlib.ExitStack() as stack:
        stream = sys.stdout if out == STDIN else stack.enter_context(
            open(out, "w", encoding="utf-8", newline="\n"))  # noqa: SIM115
        advance = stack.enter_context(progress_bar("tagging (tokens)", None, quiet or out == STDIN))  # type: ignore[arg-type]
        counts = tag_sources(tagger, sources, stream, output_format, advance)
    counts.seconds = time.perf_counter() - t0
    return counts
