"""Label consistency across a document (winner.heads.consistency): the spans it reads are conll.tags_to_spans',
the vote follows the model's probabilities within a document and never across documents, only types change, and
a tagger that votes tags the same through evaluate, the Python API's documents and `winner ner tag`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from winner.data.conll import SCHEMES, convert_tags, detect_scheme, read_conll, tags_to_spans
from winner.data.resources import wikigold_path
from winner.data.stream import resolve_sources
from winner.data.windows import word_keys
from winner.errors import ModelFormatError, WinnerError
from winner.heads import tagging
from winner.heads.consistency import entity_spans, tag_codes, vote_types
from winner.heads.metrics import entity_scores
from winner.heads.ner import evaluate_tagger
from winner.heads.tagger import Tagger, TaggerSpec, sentences_per_document

TYPES = ["LOC", "PER", "ORG"]
WINNER = str(Path(sys.executable).with_name("winner"))


def _tag_set(scheme: str) -> list[str]:
    prefixes = {"iob1": "BI", "iob2": "BI", "iobes": "BIES"}[scheme]
    return ["O", *(f"{p}-{t}" for t in TYPES for p in prefixes)]


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "iobes"])
def test_entity_spans_read_tags_as_tags_to_spans_does(scheme):
    """Random tag ids, well formed or not, sentence by sentence: the kernel's spans are tags_to_spans'."""
    assert scheme in SCHEMES
    tags = _tag_set(scheme)
    prefix, kind, kinds = tag_codes(tags)
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 9, size=200)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    path = rng.integers(0, len(tags), size=offsets[-1])
    starts, ends = np.empty(len(path), np.int64), np.empty(len(path), np.int64)
    n = entity_spans(path, offsets, prefix, kind, starts, ends)
    expected = [(kinds.index(t), a + offsets[k], b + offsets[k])
                for k in range(len(lengths))
                for t, a, b in tags_to_spans([tags[i] for i in path[offsets[k]:offsets[k + 1]]], scheme)]
    assert [(kind[path[a]], a, b) for a, b in zip(starts[:n], ends[:n], strict=True)] == expected


def test_the_vote_follows_probability_within_a_document_and_keeps_the_spans():
    tags = _tag_set("iobes")
    ids = {t: i for i, t in enumerate(tags)}
    sentences = [["Jordan", "said", "New", "York"], ["in", "Jordan", "and", "new", "york"], ["Jordan", "won"]]
    decoded = [["S-PER", "O", "B-ORG", "E-ORG"], ["O", "S-LOC", "O", "B-LOC", "E-LOC"], ["S-LOC", "O"]]
    path = np.array([ids[t] for s in decoded for t in s])
    offsets = np.array([0, 4, 9, 11])
    sure = {0: 0.9, 5: 0.6, 2: 0.5, 3: 0.5, 7: 0.7, 8: 0.9, 9: 0.2}  # token -> probability of its decoded tag
    logp = np.full((len(path), len(tags)), np.log(1e-3))
    logp[np.arange(len(path)), path] = np.log([sure.get(t, 0.99) for t in range(len(path))])
    keys = word_keys([w for s in sentences for w in s])
    out = vote_types(path, offsets, np.array([2, 1]), keys, logp, tags)  # documents: sentences 0-1, then 2
    assert [tags[i] for i in out] == ["S-PER", "O", "B-LOC", "E-LOC", "O", "S-PER", "O", "B-LOC", "E-LOC",
                                      "S-LOC", "O"]
    alone = vote_types(path, offsets, np.array([1, 1, 1]), keys, logp, tags)
    assert np.array_equal(alone, path)


def test_a_voting_tagger_tags_the_same_in_every_path(tiny_tagger):
    """The vote runs after decoding in predict_flat, so evaluate's reading, the API's documents and `ner tag` on a
    CoNLL file (its -DOCSTART- documents) give the same tags; and they are vote_types of the tagger's own path."""
    tagger = Tagger.load(tiny_tagger)
    data = wikigold_path("dev")
    sentences = read_conll(data)
    tokens, documents = [s.tokens for s in sentences], [s.doc for s in sentences]
    before = tagger.predict(tokens, scheme=tagger.spec.scheme, documents=documents)
    tagger.spec.consistency = "document"
    voted = tagger.predict(tokens, scheme=tagger.spec.scheme, documents=documents)
    assert voted != before
    lengths = np.array([len(t) for t in tokens])
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    logp = tagger.log_proba(tokens, documents=documents)
    path = tagger.decode(logp, offsets)
    expected = vote_types(path, offsets, sentences_per_document(lengths, documents),
                          word_keys([w for t in tokens for w in t]), logp, tagger.spec.tags)
    assert [t for s in voted for t in s] == [tagger.spec.tags[i] for i in expected]
    out = io.StringIO()
    tagging.tag_sources(tagger, resolve_sources([str(data)], "conll"), out, "conll")
    rows = [line.split() for line in out.getvalue().splitlines()]
    tagged = [r[-1] for r in rows if r and r[0] != "-DOCSTART-"]
    scheme = tagger.spec.output_scheme
    assert tagged == [t for s in voted for t in convert_tags(s, tagger.spec.scheme, scheme)]


def test_an_unknown_consistency_is_refused_in_one_line(tiny_tagger):
    tagger = Tagger.load(tiny_tagger)
    spec = TaggerSpec(**{**tagger.spec.to_json(), "consistency": "sentence"})
    with pytest.raises(ModelFormatError, match="consistency must be one of none, document"):
        Tagger(tagger.model, tagger.words, spec)


def test_evaluate_scores_a_saved_model_with_either_consistency(tiny_tagger):
    """`winner ner evaluate --consistency document` (the installed command, a fresh process) scores what the
    Python API gives with the vote on, and without the option the model's own setting."""
    data = wikigold_path("dev")
    sentences = read_conll(data)
    tagger = Tagger.load(tiny_tagger)
    scheme = detect_scheme([s.tags for s in sentences])
    gold = [convert_tags(s.tags, scheme, "iob2") for s in sentences]
    tokens, documents = [s.tokens for s in sentences], [s.doc for s in sentences]
    expected = {}
    for consistency in ("none", "document"):
        tagger.spec.consistency = consistency
        expected[consistency] = entity_scores(gold, tagger.predict(tokens, scheme="iob2", documents=documents))["f1"]
    assert expected["none"] != expected["document"]
    for option, consistency in (([], "none"), (["--consistency", "document"], "document")):
        r = subprocess.run([WINNER, "ner", "evaluate", str(tiny_tagger), "--data", str(data), "--json", *option],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["f1"] == expected[consistency]


def test_tag_and_the_api_decode_with_a_given_consistency(tiny_tagger, tmp_path):
    """`winner ner tag --consistency document` (the installed command, a fresh process) writes the tags that
    `Tagger.load(model, "document")` predicts for the file's documents, and without the option the model's own;
    the API's `nlp.consistency` switches tagging and evaluation the same way and refuses an unknown value."""
    import winner

    data = wikigold_path("dev")
    sentences = read_conll(data)
    tokens, documents = [s.tokens for s in sentences], [s.doc for s in sentences]
    written = {}
    for option, consistency in (([], "none"), (["--consistency", "document"], "document")):
        out = tmp_path / f"{consistency}.conll"
        r = subprocess.run([WINNER, "ner", "tag", str(tiny_tagger), str(data), "-o", str(out), "--quiet", *option],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        written[consistency] = [line.split()[-1] for line in out.read_text(encoding="utf-8").splitlines()
                                if line.strip() and not line.startswith("-DOCSTART-")]
        tagger = Tagger.load(tiny_tagger, consistency)
        predicted = tagger.predict(tokens, scheme=tagger.spec.output_scheme, documents=documents)
        assert written[consistency] == [t for tags in predicted for t in tags]
    assert written["none"] != written["document"]

    nlp = winner.load(tiny_tagger)
    assert nlp.consistency == "none"
    plain = nlp.evaluate(data)["f1"]
    nlp.consistency = "document"
    assert nlp.evaluate(data)["f1"] == evaluate_tagger(tiny_tagger, str(data), consistency="document")["f1"] != plain
    with pytest.raises(WinnerError, match="consistency must be one of none, document, got 'sentence'"):
        nlp.consistency = "sentence"
