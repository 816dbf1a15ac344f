"""Word vectors out of a trained model (word2vec format gensim loads, nearest words) and fastText vectors in
(.bin files and gensim FastText models, their subwords used for words outside the table)."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models import FastText, KeyedVectors
from gensim.models.fasttext import save_facebook_model
from typer.testing import CliRunner

import winner
from winner.cli.app import app
from winner.data.embeddings import align_vectors, load_keyed_vectors
from winner.data.resources import wikigold_path
from winner.errors import WinnerError

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("vectors") / "run"
    result = runner.invoke(app, ["ner", "train", "--train", str(wikigold_path("dev")), "--dev",
                                 str(wikigold_path("test")), "--out", str(out), "--embeddings", "none", "--hidden",
                                 "8", "--epochs", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("binary", [False, True])
def test_export_loads_in_gensim_and_equals_the_table(run_dir, tmp_path, binary):
    out = tmp_path / ("v.bin" if binary else "v.txt")
    args = ["embeddings", "export", str(run_dir), str(out)] + (["--binary"] if binary else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    kv = KeyedVectors.load_word2vec_format(str(out), binary=binary)
    tagger = winner.load(run_dir).model
    assert kv.index_to_key == tagger.words.itos
    assert np.array_equal(kv.vectors, tagger.model.params["E"])


def test_neighbors(run_dir):
    result = runner.invoke(app, ["embeddings", "neighbors", str(run_dir), "Paris", "-n", "3"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(-1.0 <= float(line.split("\t")[0]) <= 1.0 for line in lines)
    missing = runner.invoke(app, ["embeddings", "neighbors", str(run_dir), "zzqxv-not-a-word"])
    assert missing.exit_code == 1 and "not in the model's vocabulary" in missing.stderr


@pytest.fixture(scope="module")
def fasttext(tmp_path_factory):
    root = tmp_path_factory.mktemp("fasttext")
    sentences = [["paris", "is", "in", "france"], ["london", "is", "in", "england"]] * 20
    model = FastText(sentences, vector_size=8, min_count=1, epochs=2, seed=0, workers=1, bucket=1000)
    save_facebook_model(model, str(root / "ft.bin"))
    model.save(str(root / "ft.model"))
    return root, model


def test_fasttext_bin_and_model_use_subwords_outside_the_table(fasttext):
    root, model = fasttext
    words = ["paris", "parisian", "xq"]
    for kv in (load_keyed_vectors(str(root / "ft.bin"), progress=False),
               load_keyed_vectors(str(root / "ft.model"), progress=False, trust_pickle=True)):
        table, stats = align_vectors(kv, words, np.random.default_rng(0))
        assert stats["found"] == 1 and stats["subword"] >= 1
        assert np.allclose(table[0], model.wv["paris"], atol=1e-6)
        assert np.allclose(table[1], model.wv["parisian"], atol=1e-6)  # from its n-grams


def test_unreadable_vectors_name_the_formats_tried(tmp_path):
    bad = tmp_path / "vectors.txt"
    bad.write_bytes(b"3 4\nnot numbers at all\n\x00\x01")
    with pytest.raises(WinnerError, match="formats read: word2vec text or binary, GloVe text, fastText .bin"):
        load_keyed_vectors(str(bad), progress=False)
