"""Streaming `winner ner tag`: inputs (files, directories, globs, .gz), byte-range chunks, writers, batches.

Chunked and batched tagging must give exactly what one pass over the whole input gives: the Ray path relies on
it, and these tests check it without Ray.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from winner.cli.app import app
from winner.data.conll import detect_scheme, read_conll
from winner.data.resources import wikigold_path
from winner.data.stream import (
    ConllBlock,
    Source,
    boundary,
    chunk_records,
    plan_chunks,
    read_chunk,
    read_source,
    resolve_sources,
)
from winner.data.text import split_line
from winner.heads import tagger as tagger_module
from winner.heads import tagging
from winner.heads.tagger import Tagger
from winner.heads.writers import WRITERS

FIXTURES = Path(__file__).parent / "fixtures"
WINNER = str(Path(sys.executable).with_name("winner"))
runner = CliRunner()
TEXT = ("John Smith lives in New York .\n\nThe European Union met in Brussels on Monday .\r\n"
        "Ünïcödé Zürich  and   Genève\nshort\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A directory of inputs: raw text, CoNLL, and a gzipped copy of the text."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "a.txt").write_text("\ufeff" + TEXT * 20 + "\ufeffBOM inside\n" + TEXT * 20, encoding="utf-8")
    (d / "b.conll").write_bytes((FIXTURES / "conll2003_sample.txt").read_bytes() * 3)
    (d / "c.txt.gz").write_bytes(gzip.compress((TEXT * 7).encode()))
    return d


def _all_records(sources: list[Source]) -> list:
    return [r for source in sources for r in read_source(source)]


def test_inputs_expand_in_order_and_formats_are_sniffed(corpus):
    by_dir = resolve_sources([str(corpus)], "auto")
    assert [Path(s.path).name for s in by_dir] == ["a.txt", "b.conll", "c.txt.gz"]
    assert [s.format for s in by_dir] == ["text", "conll", "text"]
    assert resolve_sources([str(corpus / "*.txt*")], "auto") == [by_dir[0], by_dir[2]]
    assert _all_records(by_dir[2:])[:2] == ["John Smith lives in New York .",
                                            "The European Union met in Brussels on Monday ."]
    block = _all_records(by_dir[1:2])[1]
    assert block.tokens[:2] == ("Acme", "hires") and block.text.startswith("Acme NNP B-NP I-ORG\n")


@pytest.mark.parametrize("documents", [False, True], ids=["sentences", "documents"])
@pytest.mark.parametrize("chunk_bytes", [1, 7, 50, 333, 10_000])
def test_chunks_cut_on_sentence_boundaries(corpus, chunk_bytes, documents):
    """Chunks hold whole sentences (with `documents`, whole documents: each CoNLL sentence then ends its document
    in its chunk exactly when it does in the whole file)."""
    sources = resolve_sources([str(corpus)], "auto", paragraphs=documents)
    chunks = plan_chunks(sources, chunk_bytes, documents=documents)
    pieces = [r for c in chunks for r in chunk_records(read_chunk(sources[c.source], c), sources[c.source],
                                                       c.start == 0)]
    whole = _all_records(sources)
    if not documents:  # a chunk's last sentence ends its stream, and so a document
        pieces, whole = ([dataclasses.replace(r, ends_document=True) if isinstance(r, ConllBlock) else r for r in rs]
                         for rs in (pieces, whole))
    assert pieces == whole
    ends = [[getattr(r, "ends_document", None) for r in rs] for rs in (pieces, whole)]
    assert ends[0] == ends[1] and (False in ends[1]) == documents  # text by paragraphs: flags as one pass reads
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len([c for c in chunks if sources[c.source].format == "conll"]) > (1 if chunk_bytes < 100 else 0)


def test_the_input_tail_is_cut_into_smaller_chunks(tmp_path):
    """A chunk starting within the last tail_bytes of all the input (across files) is TAIL_SPLIT times smaller;
    every byte is in exactly one chunk, in order."""
    line = b"one two three four five six seven eight nine\n"  # 46 bytes
    for name, lines in (("a.txt", 100), ("b.txt", 60)):
        (tmp_path / name).write_bytes(line * lines)
    sources = resolve_sources([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], "text")
    chunks = plan_chunks(sources, 20 * len(line), tail_bytes=50 * len(line))
    sizes = [(c.source, (c.end - c.start) // len(line)) for c in chunks]
    assert sizes == [(0, 20)] * 5 + [(1, 20)] + [(1, 5)] * 8
    for k, source in enumerate(sources):
        mine = [c for c in chunks if c.source == k]
        assert mine[0].start == 0 and mine[-1].end == Path(source.path).stat().st_size
        assert all(a.end == b.start for a, b in zip(mine, mine[1:], strict=False))
    assert plan_chunks(sources, 20 * len(line)) == plan_chunks(sources, 20 * len(line), tail_bytes=0)
    assert len(plan_chunks(sources, 20 * len(line))) == 5 + 3


def test_conll_boundary_is_after_a_blank_line():
    data = b"A O\nB O\n\nC O\n\n\nD O\n"
    f = io.BytesIO(data)
    assert [boundary(f, t, "conll") for t in range(len(data) + 1)] == \
        [0, *[9] * 8, *[15] * 6, *[19] * 5]  # the first token line after a blank line read from the next line start
    assert [boundary(f, t, "text") for t in (0, 1, 4, 5)] == [0, 4, 4, 8]


def test_text_read_by_paragraphs_ends_documents_at_blank_lines(tmp_path):
    """--paragraphs: each non-blank line says whether a blank line (or the end) follows it, and a cut for whole
    documents falls at the first non-blank line after a blank one."""
    data = b"a b\nc d\n\n \t\nE f\ng\r\n\n"
    path = tmp_path / "p.txt"
    path.write_bytes(data)
    (source,) = resolve_sources([str(path)], "text", paragraphs=True)
    lines = list(read_source(source))
    assert lines == ["a b", "c d", "E f", "g"] == list(read_source(dataclasses.replace(source, paragraphs=False)))
    assert [line.ends_document for line in lines] == [False, True, False, True]
    f = io.BytesIO(data)
    assert [boundary(f, t, "text", documents=True) for t in range(len(data) + 1)] == [0, *[12] * 9, *[20] * 11]
    assert [boundary(f, t, "text") for t in (1, 4, 8)] == [4, 4, 8]


def test_conll_document_boundary_is_after_a_docstart_line():
    """With documents, a cut falls at the first token line after a -DOCSTART- line (before- or after-style), read
    from the next line start; a file without one more is not cut."""
    data = b"A O\n\n-DOCSTART- O\n\nB O\n\nC O\n-DOCSTART- O\nD O\n"
    f = io.BytesIO(data)
    assert [boundary(f, t, "conll", documents=True) for t in range(len(data) + 1)] == \
        [0, *[19] * 5, *[41] * 23, *[45] * 17]


def test_a_sentence_is_tagged_the_same_in_any_batch(tiny_tagger, corpus, monkeypatch):
    """The fast path (big batches) equals the straightforward one (one sentence at a time), bit for bit."""
    tagger = Tagger.load(tiny_tagger)
    sources = resolve_sources([str(corpus)], "auto")
    whole, single = io.StringIO(), io.StringIO()
    tagging.tag_sources(tagger, sources, whole, "json")
    monkeypatch.setattr(tagging, "BATCH_TOKENS", 1)
    monkeypatch.setattr(tagging.batches, "__defaults__", (1,))
    tagging.tag_sources(tagger, sources, single, "json")
    assert whole.getvalue() == single.getvalue()


@pytest.mark.parametrize("output_format", sorted(WRITERS))
def test_joined_chunk_bodies_equal_one_pass(tiny_tagger, corpus, output_format):
    tagger = Tagger.load(tiny_tagger)
    sources = resolve_sources([str(corpus)], "auto")
    one = io.StringIO()
    counts = tagging.tag_sources(tagger, sources, one, output_format)
    bodies = []
    for c in plan_chunks(sources, 120):
        out = io.StringIO()
        n = tagging.tag_chunk(tagger, read_chunk(sources[c.source], c), sources[c.source], out, output_format,
                              c.start == 0)
        bodies.append((out.getvalue(), n.sentences))
    joined = io.StringIO()
    WRITERS[output_format].join(bodies, joined)
    assert joined.getvalue() == one.getvalue()
    assert sum(n for _, n in bodies) == counts.sentences
    if output_format == "json":
        assert [r["sentence"] for r in json.loads(one.getvalue())] == list(range(counts.sentences))


def test_a_conll_file_is_tagged_by_its_documents_as_evaluate_reads_them(tiny_tagger, tmp_path, monkeypatch):
    """With document codes, `ner tag` groups a CoNLL file's sentences by its -DOCSTART- lines, as `ner evaluate`
    does: the tags of Tagger.predict with the file's documents (not those of each sentence read alone), in any
    batches, in chunks cut between documents, and from the installed command."""
    data = wikigold_path("dev")
    sentences = read_conll(data)
    scheme = detect_scheme([s.tags for s in sentences])
    tagger = Tagger.load(tiny_tagger)
    assert tagger.context is not None and tagger.context.mode == "document"
    tokens = [s.tokens for s in sentences]
    by_documents = tagger.predict(tokens, scheme=scheme, documents=[s.doc for s in sentences])
    assert by_documents != tagger.predict(tokens, scheme=scheme, documents=list(range(len(tokens))))

    def predicted(output: str) -> list[list[str]]:
        rows = [line.split() for line in output.splitlines()]
        cuts = [k for k, r in enumerate(rows) if not r or r[0] == "-DOCSTART-"]
        return [[r[-1] for r in rows[a + 1 : b]] for a, b in zip([-1, *cuts], [*cuts, len(rows)], strict=False)
                if b > a + 1]

    source = resolve_sources([str(data)], "auto")
    whole = io.StringIO()
    tagging.tag_sources(tagger, source, whole, "conll")
    assert predicted(whole.getvalue()) == by_documents
    bodies = []
    for c in plan_chunks(source, 2000, documents=True):
        body = io.StringIO()
        n = tagging.tag_chunk(tagger, read_chunk(source[0], c), source[0], body, "conll", c.start == 0)
        bodies.append((body.getvalue(), n.sentences))
    assert len(bodies) > 3
    joined = io.StringIO()
    WRITERS["conll"].join(bodies, joined)
    assert joined.getvalue() == whole.getvalue()
    r = subprocess.run([WINNER, "ner", "tag", str(tiny_tagger), str(data)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == whole.getvalue()
    monkeypatch.setattr(tagging.batches, "__defaults__", (1,))
    single = io.StringIO()
    tagging.tag_sources(tagger, source, single, "conll")
    assert single.getvalue() == whole.getvalue()


def test_text_read_by_paragraphs_is_tagged_by_its_paragraphs(tiny_tagger, tmp_path, monkeypatch):
    """`ner tag --paragraphs`: a paragraph's lines are one document, so a line's tags are those of Tagger.predict
    given its paragraph's sentences as one document (not those of each line alone), in any batches, in chunks cut
    between paragraphs, and from the installed command."""
    documents: dict[int, list[str]] = {}
    for sentence in read_conll(wikigold_path("dev")):
        documents.setdefault(sentence.doc, []).append(" ".join(sentence.tokens))
    path = tmp_path / "articles.txt"
    path.write_text("\n\n".join("\n".join(lines) for lines in documents.values()) + "\n", encoding="utf-8")
    tagger = Tagger.load(tiny_tagger)
    sentences, ids = [], []
    for k, lines in enumerate(documents.values()):
        for line in lines:
            tokens, lengths = split_line(line)
            bounds = np.cumsum([0, *lengths]).tolist()
            sentences += [tokens[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
            ids += [k] * len(lengths)
    scheme = tagger.spec.output_scheme
    by_paragraphs = [t for s in tagger.predict(sentences, scheme=scheme, documents=ids) for t in s]

    def tags(output: str) -> list[str]:
        return [line.split()[-1] for line in output.splitlines() if line.strip()]

    (source,) = resolve_sources([str(path)], "text", paragraphs=True)
    whole, lines = io.StringIO(), io.StringIO()
    tagging.tag_sources(tagger, [source], whole, "conll")
    tagging.tag_sources(tagger, [dataclasses.replace(source, paragraphs=False)], lines, "conll")
    assert tags(whole.getvalue()) == by_paragraphs != tags(lines.getvalue())
    bodies = []
    for c in plan_chunks([source], 3000, documents=True):
        body = io.StringIO()
        n = tagging.tag_chunk(tagger, read_chunk(source, c), source, body, "conll", c.start == 0)
        bodies.append((body.getvalue(), n.sentences))
    assert len(bodies) > 3
    joined = io.StringIO()
    WRITERS["conll"].join(bodies, joined)
    assert joined.getvalue() == whole.getvalue()
    r = subprocess.run([WINNER, "ner", "tag", str(tiny_tagger), str(path), "--paragraphs"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == whole.getvalue()
    monkeypatch.setattr(tagging.batches, "__defaults__", (1,))
    single = io.StringIO()
    tagging.tag_sources(tagger, [source], single, "conll")
    assert single.getvalue() == whole.getvalue()


def test_a_long_document_is_read_in_the_same_pieces_whole_and_streamed(monkeypatch):
    """A document over MAX_DOCUMENT_TOKENS is cut at the first sentence end that brings a piece to it, whether the
    tagger is given the whole list or `ner tag`'s batcher streams it sentence by sentence."""
    monkeypatch.setattr(tagger_module, "MAX_DOCUMENT_TOKENS", 10)
    lengths = np.array([4, 4, 4, 3, 8, 2, 5])
    documents = [0, 0, 0, 0, 1, 1, 2]
    assert tagger_module.sentences_per_document(lengths, documents).tolist() == [3, 1, 2, 1]
    assert tagger_module.sentences_per_document(lengths, None).tolist() == [3, 2, 2]
    ends = [k == len(documents) - 1 or documents[k + 1] != documents[k] for k in range(len(documents))]
    items = [tagging.Split(ConllBlock("", ("w",) * n, ("O",) * n, "iob2", end), ["w"] * n, [n])
             for n, end in zip(lengths.tolist(), ends, strict=True)]
    for max_tokens in (1, 12, 100):
        ids = [d for _, batch_ids in tagging.batches(items, max_tokens) for d in batch_ids]
        assert np.diff(np.flatnonzero(np.diff([-1, *ids, -2]))).tolist() == [3, 1, 2, 1]


def test_tag_command_files_out_twice_in_fresh_processes(tiny_tagger, corpus, tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}.json"
        r = subprocess.run([WINNER, "ner", "tag", str(tiny_tagger), str(corpus / "a.txt"), str(corpus / "*.gz"),
                            "--format", "json", "--out", str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "words/s" in r.stderr and r.stdout == ""
        outs.append(out.read_text(encoding="utf-8"))
    assert outs[0] == outs[1]
    assert len(json.loads(outs[0])) == 4 * (40 + 7) + 1


def test_tag_errors_are_one_line(tiny_tagger, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    for args, message in [([str(tmp_path / "nothing*")], "no such file, directory or matching files"),
                          ([str(bad)], "bad.txt:2: expected UTF-8 text"),
                          (["-", str(bad)], "cannot be combined"),
                          ([str(bad), "--workers", "2"], None)]:
        result = runner.invoke(app, ["ner", "tag", str(tiny_tagger), *args])
        if message is None:  # --workers without --out
            assert result.exit_code == 1 and "--out" in result.stderr
            continue
        assert result.exit_code == 1, result.output
        assert result.stderr.count("\n") == 1 and message in result.stderr


def test_without_ray_workers_name_the_extra(tiny_tagger, tmp_path):
    hide = tmp_path / "noray"  # an import hook that makes Ray unfindable, as in an environment without it
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoRay:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'ray':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NoRay())\n")
    env = {**os.environ, "PYTHONPATH": str(hide)}
    src = tmp_path / "s.txt"
    src.write_text(TEXT)
    r = subprocess.run([WINNER, "ner", "tag", str(tiny_tagger), str(src), "--workers", "2", "-o", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 1
    assert r.stderr.strip() == 'error: --workers, --address and `winner sweep` needs Ray: pip install "winner[ray]"'
