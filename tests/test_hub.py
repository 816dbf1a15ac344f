"""Datasets by name or path: save_to_disk directories and Parquet files by absolute, ./relative and bare path, the
validation split as dev, and a hub name failing fast with no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
from typer.testing import CliRunner

from winner.cli.app import app
from winner.data import hub
from winner.data.conll import read_conll, sentences_to_dataset
from winner.data.hub import load_sentences, validation_split
from winner.data.labelled import resolve_data
from winner.data.resources import wikigold_path
from winner.errors import WinnerError

WINNER = str(Path(sys.executable).with_name("winner"))  # the installed command, without PATH

runner = CliRunner()
TINY = ["--embeddings", "none", "--hidden", "8", "--epochs", "1", "--batch-size", "16", "--quiet", "--seed", "4"]
OFFLINE_HUB = {"HF_ENDPOINT": "https://hub.invalid"}  # never resolves, online or not


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """The same two splits (WikiGold dev as train, test as validation) as a save_to_disk DatasetDict in ds/ and
    as Parquet files in pq/ (the hub's layout: data/train-00000-of-00001.parquet)."""
    root = tmp_path_factory.mktemp("datasets")
    splits = {"train": read_conll(wikigold_path("dev")), "validation": read_conll(wikigold_path("test"))}
    dd = datasets.DatasetDict({k: sentences_to_dataset(v) for k, v in splits.items()})
    dd.save_to_disk(str(root / "ds"))
    (root / "pq" / "data").mkdir(parents=True)
    for k, d in dd.items():
        d.to_parquet(str(root / "pq" / "data" / f"{k}-00000-of-00001.parquet"))
    d = dd["train"]
    d.to_parquet(str(root / "one.parquet"))
    # JSON keeps no ClassLabel names: the tags go in as strings
    datasets.Dataset.from_dict({"tokens": [x.tokens for x in splits["train"]],
                                "ner_tags": [x.tags for x in splits["train"]]}).to_json(str(root / "one.jsonl"))
    return root


def test_every_spelling_of_a_local_dataset_reads_the_same(saved, monkeypatch):
    expected = read_conll(wikigold_path("dev"))
    monkeypatch.setattr(hub, "hub_reachable", lambda: pytest.fail("a local path went to the hub"))
    monkeypatch.chdir(saved)
    for source in (str(saved / "ds"), "./ds", "ds", str(saved / "pq"), "./pq", "pq", "one.parquet"):
        assert load_sentences(source, "train") == expected, source
    assert [(x.tokens, x.tags) for x in load_sentences(str(saved / "one.jsonl"))] == [
        (x.tokens, x.tags) for x in expected]
    assert load_sentences("./ds", "validation") == load_sentences("pq", "validation") == read_conll(
        wikigold_path("test"))
    assert validation_split("ds") == validation_split("./pq") == "validation"
    assert validation_split(str(wikigold_path("dev"))) is None


def test_a_missing_split_or_path_is_one_line(saved):
    with pytest.raises(WinnerError, match="no test split .it has train, validation."):
        load_sentences(str(saved / "ds"), "test")
    with pytest.raises(WinnerError, match="no such file or directory"):
        load_sentences("./nowhere")
    with pytest.raises(WinnerError, match="no such file or directory"):
        load_sentences("absent.parquet")


def test_validation_split_is_the_dev_set(saved):
    train, dev, _, dev_src = resolve_data(str(saved / "pq"), None)
    assert dev == read_conll(wikigold_path("test")) and train == read_conll(wikigold_path("dev"))
    assert dev_src.endswith("(validation split)")


def test_hub_name_fails_fast_with_no_network(monkeypatch):
    for k, v in OFFLINE_HUB.items():
        monkeypatch.setenv(k, v)
    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    t = time.perf_counter()
    with pytest.raises(WinnerError) as info:
        load_sentences("someone/ner-data")
    assert time.perf_counter() - t < 2.0
    assert "cannot be reached" in str(info.value) and "pass a local path" in str(info.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(WinnerError, match="HF_HUB_OFFLINE is set"):
        load_sentences("someone/ner-data:en")


def test_cli_hub_name_offline_is_one_line(tmp_path):
    env = {**os.environ, **OFFLINE_HUB}
    t = time.perf_counter()
    out = subprocess.run([WINNER, "ner", "train", "--train", "someone/ner-data", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, env=env, timeout=120)
    seconds = time.perf_counter() - t
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "pass a local path" in out.stderr
    assert seconds < 20, f"{seconds:.1f}s"  # the loader itself is checked against 2 s above


def test_evaluate_takes_a_split(saved, tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["ner", "train", "--train", str(saved / "ds"), "--out", str(run), *TINY]).exit_code == 0
    scores = {}
    for split in ("validation", "train"):
        result = runner.invoke(app, ["ner", "evaluate", str(run), "--data", str(saved / "pq"), "--split", split,
                                     "--json"])
        assert result.exit_code == 0, result.output
        scores[split] = json.loads(result.stdout)["sentences"]
    assert scores == {"validation": len(read_conll(wikigold_path("test"))),
                      "train": len(read_conll(wikigold_path("dev")))}


def test_save_to_disk_and_parquet_train_identically(saved, tmp_path, monkeypatch):
    monkeypatch.chdir(saved)
    summaries = []
    for i, source in enumerate((str(saved / "ds"), "./pq")):
        result = runner.invoke(app, ["ner", "train", "--train", source, "--out", str(tmp_path / str(i)), *TINY])
        assert result.exit_code == 0, result.output
        summaries.append(json.loads((tmp_path / str(i) / "summary.json").read_text()))
    assert summaries[0]["best_dev_f1"] == summaries[1]["best_dev_f1"]
