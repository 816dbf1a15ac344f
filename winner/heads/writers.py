"""Output formats of `winner ner tag`: one small writer per format, fed one tagged record at a time.

A record (winner.data.stream) is a line of raw text or a CoNLL sentence with the lines around it; the writer
gets it with its tagged Doc (winner.heads.docs). A writer writes a header when opened, what each record
becomes, and a footer when closed. Distributed tagging
writes each chunk's records alone (`body_only`), then `join` puts header, chunk bodies and footer together so
that the result is byte for byte what one writer would have written. A new format is a subclass registered in
WRITERS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import ClassVar, TextIO

from winner.data.conll import append_column, convert_tags, spans_to_tags
from winner.data.stream import ConllBlock, Record
from winner.heads.docs import Doc
from winner.heads.render import PAGE_FOOT, TaggedSentence, page_head, render_sentence


class SentenceWriter:
    """Header, records separated by `separator`, footer. Subclasses define `record` (and may renumber); `count`
    is the number of records written so far, numbered from 0."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    header: ClassVar[str] = ""
    footer: ClassVar[str] = ""
    separator: ClassVar[str] = ""

    def __init__(self, out: TextIO, scheme: str, body_only: bool = False):
        self.out = out
        self.scheme = scheme  # the tag scheme of the tags written, for formats that show spans
        self.body_only = body_only
        self.count = 0

    def open(self) -> None:
        if not self.body_only:
            self.out.write(self.header)

    def write(self, source: Record, doc: Doc) -> None:
        text = self.record(self.count, source, doc)
        if text is not None:
            self.out.write((self.separator if self.count else "") + text)
            self.count += 1

    def close(self) -> None:
        if not self.body_only:
            self.out.write(self.footer)

    def record(self, index: int, source: Record, doc: Doc) -> str | None:
        """What record number `index` becomes, or None to write nothing (a record without tokens)."""
        raise NotImplementedError

    @classmethod
    def renumber(cls, body: str, first_index: int) -> str:
        """A chunk body whose records were numbered from 0, numbered from `first_index` instead."""
        return body

    @classmethod
    def join(cls, bodies: Iterable[tuple[str, int]], out: TextIO) -> None:
        """Write header, every (body, its record count) in order, footer: what one writer would have written."""
        out.write(cls.header)
        count = 0
        for body, n in bodies:
            if body:
                out.write((cls.separator if count else "") + cls.renumber(body, count))
                count += n
        out.write(cls.footer)


class ConllWriter(SentenceWriter):
    """A CoNLL input given back whole, every column, blank and -DOCSTART- line kept, with the predicted tag (in
    the file's own scheme) as a last column: what conlleval reads. Raw text: `token tag` lines, a blank line
    after each input line."""

    name = "conll"
    suffix = ".conll"

    def record(self, index: int, source: Record, doc: Doc) -> str:
        return self.tagged(source, [t.text for t in doc.tokens], doc.tags)

    def write_tagged(self, source: Record, tokens: list[str], tags: list[str]) -> None:
        """Write one record from its token strings and tags alone: no Doc needed for this format."""
        self.out.write(self.tagged(source, tokens, tags))
        self.count += 1

    def tagged(self, source: Record, tokens: list[str], tags: list[str]) -> str:
        if isinstance(source, ConllBlock):
            return append_column(source.text, [convert_tags(tags, self.scheme, source.scheme)])
        lines = [""] * (2 * len(tokens) + 1)
        lines[0:-1:2] = tokens
        lines[1:-1:2] = map(_TAG_LINE_END.__getitem__, tags)
        lines[-1] = "\n"
        return "".join(lines)


class _TagLineEnds(dict):
    """" TAG\n" for every tag, made once per tag."""

    def __missing__(self, tag: str) -> str:
        self[tag] = value = f" {tag}\n"
        return value


_TAG_LINE_END = _TagLineEnds()


class JsonWriter(SentenceWriter):
    """A JSON list with one object per line: record number (from 0), the text (a CoNLL sentence's tokens joined
    by spaces), its tokens with character offsets and tags, its entities with label and character offsets."""

    name = "json"
    suffix = ".json"
    header = "[\n"
    footer = "\n]\n"
    separator = ",\n"
    _INDEX = re.compile(r'^\{"sentence": (\d+)', re.MULTILINE)

    def record(self, index: int, source: Record, doc: Doc) -> str | None:
        if not doc.tokens:
            return None
        return json.dumps({"sentence": index, **doc.to_json()}, ensure_ascii=False)

    @classmethod
    def renumber(cls, body: str, first_index: int) -> str:
        if not first_index:
            return body
        return cls._INDEX.sub(lambda m: f'{{"sentence": {int(m.group(1)) + first_index}', body)


class HtmlWriter(SentenceWriter):
    """One self-contained page (winner.heads.render), a paragraph per record with its entities highlighted."""

    name = "html"
    suffix = ".html"
    header = page_head("winner: entities")
    footer = PAGE_FOOT
    separator = "\n"

    def record(self, index: int, source: Record, doc: Doc) -> str | None:
        if not doc.tokens:
            return None
        # The Doc's entities, found sentence by sentence, as tags: none runs across a sentence boundary.
        tags = spans_to_tags([(e.label, e.start, e.end) for e in doc.ents], len(doc.tokens), self.scheme)
        return render_sentence(TaggedSentence([t.text for t in doc.tokens], tags, self.scheme))


WRITERS: dict[str, type[SentenceWriter]] = {w.name: w for w in (ConllWriter, JsonWriter, HtmlWriter)}
