"""`winner ner|score|lm explain` and `ner tag --format html`: tables, JSON, escaped self-contained pages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from winner.cli.app import app
from winner.core.mlp import MLPConfig, WindowMLP
from winner.data.text import tokenize
from winner.data.vocab import PAD, UNK, Vocab
from winner.data.windows import CASINGS
from winner.heads.explain import explain_lm, explain_scorer, explain_tagger
from winner.heads.lm import LanguageModel
from winner.heads.render import TaggedSentence, render_page
from winner.heads.scorer import Scorer, ScorerSpec
from winner.heads.tagger import Tagger, TaggerSpec

WINNER = str(Path(sys.executable).with_name("winner"))  # the installed command, without PATH

runner = CliRunner()
SENTENCE = "Jim bought 300 shares of Acme Corp. in 2006 ."
HOSTILE = 'John Smith wrote <script>alert("x")</script> & <img src=x onerror=alert(1)> in Paris .'


def linear_tagger() -> Tagger:
    """A float64 tagger with no hidden layer: its logits are linear in the inputs."""
    words = Vocab([PAD, UNK, "john", "smith", "went", "home", "."])
    tags = ["O", "S-PER", "B-PER", "E-PER"]
    config = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=4, n_out=len(tags), hidden=(),
                       n_features=len(CASINGS), feature_dim=2, dtype="float64")
    return Tagger(WindowMLP(config, seed=3), words, TaggerSpec(1, tags, "iobes", "iob2"))


def test_tagger_explanations_add_up_to_the_chosen_tags_logit_with_the_bias():
    tagger = linear_tagger()
    sentences = [["John", "Smith", "went", "home", "."], ["Home", "."]]
    tags, explanations = explain_tagger(tagger, sentences)
    assert [len(t) for t in tags] == [5, 2] and len(explanations) == 7
    ids, feats = tagger.featurize(sentences)
    logits = tagger.model.predict_logits(ids, feats)
    bias = tagger.model.params["b0"]
    for k, x in enumerate(explanations):
        chosen = tagger.tag_vocab.stoi[x.label]
        assert x.score == pytest.approx(logits[k, chosen], abs=1e-12)
        assert x.rest == pytest.approx(bias[chosen], abs=1e-9)
        assert sum(x.word) + sum(x.casing) + bias[chosen] == pytest.approx(x.score, abs=1e-5)  # 6-digit rounding
    first = explanations[0]
    assert first.window == [PAD, "John", "Smith"] and first.offsets == [-1, 0, 1]
    assert explanations[5].sentence == 1 and explanations[5].position == 0


def test_a_tagger_with_document_codes_explains_the_codes_as_two_more_inputs():
    """The codes' contributions are each code's gradient x input: for a linear model, the code (the mean of the
    linked occurrences' neighbours, written out here) times its block of W0, and they add up with the window's."""
    words = Vocab([PAD, UNK, "john", "smith", "went", "home", "."])
    tags = ["O", "S-PER", "B-PER", "E-PER"]
    config = MLPConfig(n_positions=5, vocab_size=len(words), embed_dim=4, n_out=len(tags), hidden=(),
                       n_features=len(CASINGS), feature_dim=2, dtype="float64")
    spec = TaggerSpec(1, tags, "iobes", "iob2", context={"mode": "document", "forget": 0.5, "occurrences": 2})
    tagger = Tagger(WindowMLP(config, seed=3), words, spec)
    sentences = [["John", "Smith", "went", "home", "."], ["John", "went", "home", "."]]
    _, explanations = explain_tagger(tagger, sentences)
    x = explanations[5]  # the second "John": linked to the first, whose right neighbour is "Smith"
    assert x.window == [PAD, "John", "went", "<document left>", "<document right>"]
    assert x.offsets == [-1, 0, 1, -2, 2]
    W0, E = tagger.model.params["W0"], tagger.model.E
    chosen, stride = tagger.tag_vocab.stoi[x.label], 4 + 2
    assert x.word[3] == pytest.approx(0.0, abs=1e-12)  # the first "John" starts its sentence: nothing left of it
    assert x.word[4] == pytest.approx(E[words.stoi["smith"]] @ W0[4 * stride : 4 * stride + 4, chosen], abs=1e-6)
    bias = tagger.model.params["b0"][chosen]
    assert sum(x.word) + sum(x.casing) + bias == pytest.approx(x.score, abs=1e-5)


def test_scorer_and_lm_explanations():
    words = Vocab([PAD, UNK, "paris", "in", "."])
    config = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=4, n_out=1, hidden=(5,),
                       n_features=len(CASINGS), feature_dim=2, dtype="float64")
    scorer = Scorer(WindowMLP(config, seed=1), words, ScorerSpec(1, "LOC", 1.0))
    xs = explain_scorer(scorer, [["In", "Paris", "."]])
    np.testing.assert_allclose([x.score for x in xs], scorer.score([["In", "Paris", "."]]), rtol=0, atol=1e-12)
    assert [x.label for x in xs] == ["LOC"] * 3
    lm = LanguageModel.create(Vocab([UNK, "the", "cat", "sat", "."]), context=2, embed_dim=3, hidden=(4,),
                              direct=True, dtype="float64")
    xs = explain_lm(lm, "The cat sat on the mat .")
    assert [x.token for x in xs] == ["the", "cat", "sat", "on", "the", "mat", "."]
    assert xs[3].label == UNK and xs[2].window == ["the", "cat"] and xs[0].window == [PAD, PAD]
    assert xs[0].offsets == [-2, -1] and all(x.score < 0 for x in xs)  # log-probabilities
    assert all(x.casing == [0.0, 0.0] for x in xs)


def test_page_escapes_everything_and_loads_nothing():
    tokens = HOSTILE.split()
    tags = ["B-PER", "I-PER"] + ["O"] * (len(tokens) - 4) + ["B-<b>x</b>", "O"]
    page = render_page([TaggedSentence(tokens, tags, "iob2")], title="<title>")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "&lt;img src=x" in page
    assert not re.search(r"<[^>]*\s(src|href)=", page)  # no external script, font or stylesheet
    assert "&lt;title&gt;" in page
    assert 'data-type="&lt;b&gt;x&lt;/b&gt;"' in page and page.count("<mark") == 2


def test_ner_explain_table_json_and_page(small_tagger):
    table = runner.invoke(app, ["ner", "explain", str(small_tagger), SENTENCE])
    assert table.exit_code == 0, table.output
    lines = table.stdout.strip().splitlines()
    assert lines[0].split()[:5] == ["token", "label", "logit", "rest", "casing"]
    assert len(lines) == 1 + len(tokenize(SENTENCE)) and "[Jim]" in lines[1]
    records = json.loads(runner.invoke(app, ["ner", "explain", str(small_tagger), SENTENCE, "--json"]).stdout)
    x = records[0]["explanations"][0]
    assert x["token"] == "Jim" and len(x["word"]) == 7 and x["window"][2] == "Jim"
    assert x["window"][5:] == ["<document left>", "<document right>"]  # the default model's codes
    assert x["rest"] == pytest.approx(x["score"] - sum(x["word"]) - sum(x["casing"]), abs=1e-4)
    page = runner.invoke(app, ["ner", "explain", str(small_tagger), "-", "--html"], input=HOSTILE + "\n")
    assert page.exit_code == 0, page.output
    assert page.stdout.startswith("<!doctype html>") and "<script" not in page.stdout
    assert page.stdout.count('class="strip"') == len(tokenize(HOSTILE)) * 7  # window 5 and 2 codes: a strip each
    both = runner.invoke(app, ["ner", "explain", str(small_tagger), SENTENCE, "--json", "--html"])
    assert both.exit_code == 1 and "choose one" in both.output


def test_ner_tag_html_in_fresh_processes(small_tagger, tmp_path):
    """As users run it: the installed command, twice, in new processes, same page both times."""
    text = tmp_path / "in.txt"
    text.write_text("John Smith lives in New York .\n" + HOSTILE + "\n", encoding="utf-8")
    pages = [subprocess.run([WINNER, "ner", "tag", str(small_tagger), str(text), "--format", "html"],
                            capture_output=True, text=True, timeout=600) for _ in range(2)]
    for p in pages:
        assert p.returncode == 0, p.stderr
    assert pages[0].stdout == pages[1].stdout
    page = pages[0].stdout
    assert "<script" not in page and "&lt; script &gt;" in page  # the tokenizer splits < and > off
    assert page.count('<p class="sentence">') == 2
    entities = re.findall(r'<mark class="entity" data-type="(\w+)"[^>]*>([^<]*)<span', page)
    assert entities, page
    tagged = json.loads(subprocess.run([WINNER, "ner", "tag", str(small_tagger), str(text), "--format", "json"],
                                       capture_output=True, text=True, timeout=600).stdout)
    expected = [(e["label"], e["text"].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                 .replace('"', "&quot;")) for r in tagged for e in r["entities"]]
    assert entities == expected


def test_score_and_lm_explain_commands(tmp_path):
    words = Vocab([PAD, UNK, "paris", "in", "."])
    config = MLPConfig(n_positions=3, vocab_size=len(words), embed_dim=4, n_out=1, hidden=(5,),
                       n_features=len(CASINGS), feature_dim=2)
    Scorer(WindowMLP(config, seed=1), words, ScorerSpec(1, "LOC", 1.0, threshold=-100.0)).save(tmp_path / "scorer")
    LanguageModel.create(Vocab([UNK, "the", "cat", "sat", "."]), context=2, embed_dim=3, hidden=(4,),
                         direct=False).save(tmp_path / "lm")
    for head, run, text, name in (("score", "scorer", "In Paris .", "score"), ("lm", "lm", "the cat sat .", "log p")):
        table = runner.invoke(app, [head, "explain", str(tmp_path / run), text])
        assert table.exit_code == 0, table.output
        lines = table.stdout.strip().splitlines()
        assert name in lines[0] and len(lines) == 1 + len(text.split())
        records = json.loads(runner.invoke(app, [head, "explain", str(tmp_path / run), text, "--json"]).stdout)
        assert [r["token"] for r in records] == text.split()
        page = runner.invoke(app, [head, "explain", str(tmp_path / run), text, "--html"]).stdout
        assert page.startswith("<!doctype html>") and page.count('class="strip"') == sum(len(r["window"])
                                                                                        for r in records)
    page = runner.invoke(app, ["score", "explain", str(tmp_path / "scorer"), "In Paris .", "--html"]).stdout
    assert page.count('data-type="LOC"') == 3  # every window is above the threshold of -100
    empty = runner.invoke(app, ["lm", "explain", str(tmp_path / "lm"), "  "])
    assert empty.exit_code == 1 and "no words" in empty.output
