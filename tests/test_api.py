"""The Python API: `winner.load` per head, `nlp(text)` / `nlp.pipe` with character offsets, pre-tokenised input,
`nlp.evaluate`, the scorer's `rank` and the LM's `generate` / `perplexity`, and the README's Python examples."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import winner
from winner.cli.app import app
from winner.data.resources import wikigold_path
from winner.heads.docs import pretokenized

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
# A WikiGold paragraph (test split, first document) as running text.
PARAGRAPH = ("A Dutch-Australian is an inhabitant of Australia with full or partial Dutch ancestry, the majority of "
             "these people were part of the Dutch diaspora. The history of the Dutch and Australia began in 1605 "
             "with Captain Willem Janszoon, a Dutch seafarer, landing on the Australian mainland, one of the first "
             "Europeans to do so.")


@pytest.fixture(scope="module")
def run_dir(small_tagger) -> Path:
    """The session's small tagger (trained on WikiGold train): these tests only read it."""
    return small_tagger


@pytest.fixture(scope="module")
def nlp(run_dir):
    return winner.load(run_dir)


def test_import_winner_loads_no_numba():
    code = "import sys, winner; assert 'numba' not in sys.modules, 'numba'; print(winner.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == winner.__version__


def test_load_takes_a_run_or_its_model_dir(run_dir, nlp):
    assert isinstance(nlp, winner.NER)
    assert isinstance(winner.load(run_dir / "model"), winner.NER)
    assert nlp.labels == ["LOC", "MISC", "ORG", "PER"]
    with pytest.raises(winner.WinnerError, match="no model here"):
        winner.load(run_dir / "checkpoint" / "nothing")


def test_offsets_index_the_text_on_a_wikigold_paragraph(nlp):
    doc = nlp(PARAGRAPH)
    assert doc.text == PARAGRAPH
    for t in doc.tokens:
        assert PARAGRAPH[t.start:t.end] == t.text
    assert len(doc.sents) == 2
    assert doc.ents, "the tiny model finds no entity at all"
    for e in doc.ents:
        assert PARAGRAPH[e.start_char:e.end_char] == e.text
        assert doc.tokens[e.start].start == e.start_char and doc.tokens[e.end - 1].end == e.end_char
        assert 0.0 < e.confidence <= 1.0
    record = doc.to_json()
    assert [e["text"] for e in record["entities"]] == [e.text for e in doc.ents]
    assert set(record["entities"][0]) == {"text", "label", "start_char", "end_char", "start", "end", "confidence"}


def test_a_string_is_text_and_a_list_is_tokens(nlp):
    assert [t.text for t in nlp("John lives in Paris").tokens] == ["John", "lives", "in", "Paris"]
    doc = nlp(["John", "lives", "in", "Paris"])
    assert doc.text == "John lives in Paris" and len(doc.sents) == 1
    assert [(t.start, t.end) for t in doc.tokens] == [(0, 4), (5, 10), (11, 13), (14, 19)]
    assert nlp("").tokens == [] and nlp([]).ents == []
    with pytest.raises(TypeError, match="list of tokens"):
        pretokenized("John lives")
    with pytest.raises(ValueError, match="without spaces"):
        nlp(["New York", "is", "big"])
    with pytest.raises(TypeError, match="not a str"):  # the old trap: a sentence tagged character by character
        nlp.model.predict(["John lives in Paris"])


def test_pipe_in_batches_equals_one_text_at_a_time(nlp):
    texts = [PARAGRAPH, "Angela Merkel visited Paris.", ["Toyota", "opened", "a", "plant", "in", "Texas", "."],
             "", "The U.S. Senate met in Washington on Monday."]
    alone = [nlp(t) for t in texts]
    for batch_size in (1, 2, 64):
        piped = list(nlp.pipe(iter(texts), batch_size=batch_size))
        assert [d.tags for d in piped] == [d.tags for d in alone]
        assert [d.ents for d in piped] == [d.ents for d in alone]


def test_evaluate_equals_the_cli(run_dir, nlp, tmp_path):
    scores = nlp.evaluate(wikigold_path("test"), predictions=tmp_path / "pred.txt")
    result = runner.invoke(app, ["ner", "evaluate", str(run_dir), "--data", str(wikigold_path("test")), "--json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    assert cli["f1"] == scores["f1"] and cli["per_type"] == scores["per_type"]
    assert (tmp_path / "pred.txt").is_file()


def test_scorer_rank_and_lm_generate_perplexity(tmp_path):
    scorer_dir = tmp_path / "loc"
    result = runner.invoke(app, ["score", "train", "--out", str(scorer_dir), "--embeddings", "none", "--hidden", "8",
                                 "--epochs", "1", "--batch-size", "16", "--quiet"])
    assert result.exit_code == 0, result.output
    scorer = winner.load(scorer_dir)
    assert isinstance(scorer, winner.WindowScorer) and scorer.label == "LOC"
    text = "Not all museums in Paris are amazing."
    ranked = scorer.rank(text)
    assert len(ranked) == 8 and ranked[0]["score"] >= ranked[-1]["score"]
    assert all(text[r["start_char"]:r["end_char"]] == r["centre"] for r in ranked)
    assert scorer.rank(text, top=2) == ranked[:2]

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    words = "the cat sat on the mat . a dog ran in the park .".split()
    for name, n in (("train.txt", 60), ("valid.txt", 6)):
        (corpus / name).write_text("\n".join(" ".join(words[(i + j) % len(words)] for j in range(10))
                                             for i in range(n)))
    result = runner.invoke(app, ["lm", "train", "--corpus", str(corpus), "--out", str(tmp_path / "lm"), "--epochs",
                                 "1", "--hidden", "8", "--embed-dim", "4", "--min-count", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    lm = winner.load(tmp_path / "lm")
    assert isinstance(lm, winner.LM)
    text = lm.generate("the cat", n=5, seed=1)
    assert text.startswith("the cat ") and len(text.split()) == 7
    assert text == lm.generate("the cat", n=5, seed=1)
    assert lm.perplexity("the cat sat on the mat .") > 1.0


def _readme_python() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's Python section has no python block"
    return "\n".join(blocks)


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path):
    """The README's Python section, run as a user runs it from the repository root (here a copy with data/)."""
    (tmp_path / "data").symlink_to(ROOT / "data")
    script = tmp_path / "readme_example.py"
    script.write_text(_readme_python(), encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test F1" in out.stdout and "('AT&T'" in out.stdout and "('U.S.'" in out.stdout
