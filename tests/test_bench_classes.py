"""The factored-output bench rows (core/bench_classes.py): its PyTorch reference is the same model (same loss from
the same weights), and the rows and the full-to-factored ratio are reported (no timing asserted)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from winner.cli.app import app
from winner.core import bench_classes, classes
from winner.heads.settings import LMSettings

runner = CliRunner()


def test_the_pytorch_reference_computes_winners_loss():
    torch = pytest.importorskip("torch", reason="PyTorch (the bench extra) is not installed")
    d = bench_classes.DEFAULT
    layout = classes.layout_of(classes.frequency_classes(bench_classes.zipf_counts(d["vocab"]), d["classes"]))
    model = bench_classes.class_model(layout, "classes")
    C = layout.starts.shape[0] - 1
    model.params["b1"][...] = np.random.default_rng(0).normal(0, 1, model.params["b1"].shape)
    net = bench_classes.torch_class_lm(torch, layout).eval()
    with torch.no_grad():
        net.emb.weight.copy_(torch.from_numpy(model.E[: d["vocab"]]))
        net.hidden.weight.copy_(torch.from_numpy(model.params["W0"].T.copy()))
        net.hidden.bias.copy_(torch.from_numpy(model.params["b0"]))
        net.classes.weight.copy_(torch.from_numpy(model.params["W1"][:, :C].T.copy()))
        net.classes.bias.copy_(torch.from_numpy(model.params["b1"][:C]))
        net.words.weight.copy_(torch.from_numpy(model.params["W1"][:, C:].T.copy()))
        net.word_bias.weight.copy_(torch.from_numpy(model.params["b1"][C:, None].copy()))
    rng = np.random.default_rng(1)
    X = rng.integers(0, d["vocab"], (50, d["positions"])).astype(np.int32)
    y = rng.integers(0, d["vocab"], 50).astype(np.int64)
    nll = np.empty(50)
    classes.class_nll(model.predict_logits(X), y, layout, nll)
    with torch.no_grad():
        ours = float(net(torch.from_numpy(X.astype(np.int64)), torch.from_numpy(y)))
    assert ours == pytest.approx(nll.mean(), rel=1e-5)


def test_bench_reports_factored_rows_and_the_epoch_time_ratio(tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--quick", "--no-torch", "--threads", "1", "--only", "lm-classes",
                                 "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = {(r["workload"], r["batch"]) for r in report["rows"]}
    assert {("lm classes train", 64), ("lm classes train", 256), ("lm classes train", 128),
            ("lm full softmax train", 128), ("lm 2-word output train", 128)} <= rows
    assert all(r["winner"] > 0 for r in report["rows"])
    ratio = report["checks"]["lm epoch time, full softmax / factored output (batch 128, 1 thread)"]
    ceiling = report["checks"]["lm epoch time, full softmax / 2-word output: the most any output layer can gain"]
    assert ratio.endswith("x") and float(ratio[:-1]) > 1.0
    assert ceiling.endswith("x") and float(ceiling[:-1]) > 1.0


def test_the_bench_model_is_the_default_lm():
    """The factored rows time `winner lm train`'s default network, so the bench follows the defaults."""
    d, s = bench_classes.DEFAULT, LMSettings()
    assert (d["positions"], d["embed"], (d["hidden"],), d["classes"], d["batch"]) == \
        (s.context, s.embed_dim, s.hidden, s.classes, s.batch_size)
