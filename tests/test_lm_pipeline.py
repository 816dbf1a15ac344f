"""Pipeline steps for language-model mixtures: `lm ngram`, `lm perplexity` over `models`, and `into` (a step
writing in a subdirectory of the pipeline's out)."""

from __future__ import annotations

import pytest

from winner.cli.pipeline import load_pipeline, run_pipeline
from winner.errors import WinnerError

TEXT = " ".join(["the cat sat on the mat .", "a dog ran far .", "the dog sat on a cat ."] * 40)


def test_a_pipeline_mixes_two_ngram_models_fitted_on_valid(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    toml = tmp_path / "mix.toml"
    toml.write_text(f'''name = "mix"
out = "{tmp_path / 'run'}"
[[step]]
run = "lm ngram"
corpus = "{corpus}"
order = "2"
[[step]]
run = "lm ngram"
corpus = "{corpus}"
order = "3"
into = "tri"
[[step]]
run = "lm perplexity"
models = ["ngram", "tri/ngram"]
split = "valid"
''', encoding="utf-8")
    summary = run_pipeline(toml)
    assert (tmp_path / "run" / "ngram" / "model").is_dir() and (tmp_path / "run" / "tri" / "ngram" / "model").is_dir()
    mixed = summary["steps"][2]["result"]
    assert len(mixed["weights"]) == 2 and sum(mixed["weights"]) == pytest.approx(1.0)
    assert mixed["perplexity"] <= max(mixed["each"]) + 1e-9


@pytest.mark.parametrize("into", ["../elsewhere", "a/b", ".hidden"])
def test_into_must_be_a_plain_subdirectory(tmp_path, into):
    toml = tmp_path / "bad.toml"
    toml.write_text(f'[[step]]\nrun = "lm ngram"\ninto = "{into}"\n', encoding="utf-8")
    with pytest.raises(WinnerError, match="into"):
        load_pipeline(toml, {})
