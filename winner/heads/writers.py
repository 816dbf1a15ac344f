"""Output formats of `winner ner tag`: one small writer per format, fed one tagged sentence at a time.

A writer writes a header when opened, one record per sentence, and a footer when closed. Distributed tagging
writes each chunk's records alone (`body_only`), then `join` puts header, chunk bodies and footer together so
that the result is byte for byte what one writer would have written. A new format is a subclass registered in
WRITERS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import ClassVar, TextIO

from winner.data.conll import tags_to_spans
from winner.heads.render import PAGE_FOOT, TaggedSentence, page_head, render_sentence


class SentenceWriter:
    """Header, records separated by `separator`, footer. Subclasses define `record` (and may renumber)."""

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

    def write(self, tokens: Sequence[str], tags: Sequence[str]) -> None:
        self.out.write((self.separator if self.count else "") + self.record(self.count, tokens, tags))
        self.count += 1

    def close(self) -> None:
        if not self.body_only:
            self.out.write(self.footer)

    def record(self, index: int, tokens: Sequence[str], tags: Sequence[str]) -> str:
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
            if n:
                out.write((cls.separator if count else "") + cls.renumber(body, count))
                count += n
        out.write(cls.footer)


class ConllWriter(SentenceWriter):
    """`token tag` lines, a blank line after every sentence."""

    name = "conll"
    suffix = ".conll"

    def record(self, index: int, tokens: Sequence[str], tags: Sequence[str]) -> str:
        return "".join(f"{w} {t}\n" for w, t in zip(tokens, tags, strict=True)) + "\n"


class JsonWriter(SentenceWriter):
    """A JSON list with one object per line: sentence number (from 0), tokens, entity spans (end exclusive)."""

    name = "json"
    suffix = ".json"
    header = "[\n"
    footer = "\n]\n"
    separator = ",\n"
    _INDEX = re.compile(r'^\{"sentence": (\d+)', re.MULTILINE)

    def record(self, index: int, tokens: Sequence[str], tags: Sequence[str]) -> str:
        entities = [{"type": kind, "start": start, "end": end, "text": " ".join(tokens[start:end])}
                    for kind, start, end in tags_to_spans(list(tags), self.scheme)]
        return json.dumps({"sentence": index, "tokens": list(tokens), "entities": entities}, ensure_ascii=False)

    @classmethod
    def renumber(cls, body: str, first_index: int) -> str:
        if not first_index:
            return body
        return cls._INDEX.sub(lambda m: f'{{"sentence": {int(m.group(1)) + first_index}', body)


class HtmlWriter(SentenceWriter):
    """One self-contained page (winner.heads.render), a paragraph per sentence with its entities highlighted."""

    name = "html"
    suffix = ".html"
    header = page_head("winner: entities")
    footer = PAGE_FOOT
    separator = "\n"

    def record(self, index: int, tokens: Sequence[str], tags: Sequence[str]) -> str:
        return render_sentence(TaggedSentence(list(tokens), list(tags), self.scheme))


WRITERS: dict[str, type[SentenceWriter]] = {w.name: w for w in (ConllWriter, JsonWriter, HtmlWriter)}
