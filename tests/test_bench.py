"""The benchmark command: its report's shape and checks, and its answers to bad options (no timing asserted:
speed targets live in the benchmark's own output, not in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import threadpoolctl
from typer.testing import CliRunner

from winner.cli.app import app
from winner.core import bench
from winner.core.bench import parse_list, parse_threads
from winner.core.runtime import set_threads

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_quick_bench_reports_rates_checks_and_the_gemm_ceiling(tmp_path):
    out, picture = tmp_path / "bench.json", tmp_path / "plots" / "bench.png"
    result = runner.invoke(app, ["bench", "--quick", "--no-torch", "--threads", "1", "--only", "gemm,tag,lm",
                                 "--json", "--out", str(out), "--plot", str(picture)])
    assert result.exit_code == 0, result.output
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in picture.parent.iterdir()] == ["bench.png"]  # no temporary file left behind
    report = json.loads(out.read_text())
    assert json.loads(result.stdout[result.stdout.index("{"):]) == report
    assert set(report["gemm_gflops"]) == {"1"} and report["gemm_gflops"]["1"] > 0
    rows = {(r["workload"], r["batch"]): r for r in report["rows"]}
    assert {("tagging", 4096), ("tagging, character windows", 4096), ("lm train", 64), ("lm generate", 1)} <= set(rows)
    for r in report["rows"]:
        assert r["threads"] == 1 and r["winner"] > 0 and r["torch"] is None and r["ratio"] is None
        assert len(r["runs"]) == 3 or r["workload"] == "tagging (straightforward)"
    assert report["checks"]["tagging: tokens whose tag differs, lookup vs straightforward"] == 0
    assert report["checks"]["tagging with characters: max |log p difference|, lookup vs straightforward"] < 1e-4
    assert "tagging (lookup path)" in report["first_call_seconds"]


@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_ceiling_gives_the_blas_the_threads_it_measures(threads, monkeypatch):
    """winner keeps numpy's BLAS on one thread, so the ceiling of n threads must lift that for its own products
    (else every two-thread %GEMM is against a one-thread rate), and put it back after."""
    seen = []

    def dot(a, b, out):
        seen.append(max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"))
        return np.matmul(a, b, out=out)

    monkeypatch.setattr(bench.np, "dot", dot)
    try:
        assert bench.gemm_ceiling(threads, repeats=3, size=8) > 0
        after = {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}
    finally:
        set_threads(None)
    assert seen and set(seen) == {threads}
    assert after == {1}


def test_table_output_has_a_line_per_figure():
    result = runner.invoke(app, ["bench", "--quick", "--no-torch", "--threads", "1", "--only", "tag"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["workload", "batch", "thr"]
    assert any(line.startswith("tagging ") and "tokens/s" in line for line in lines)
    assert any(line.startswith("check: tagging: tokens whose tag differs") for line in lines)


@pytest.mark.parametrize(("args", "message"), [
    (["--only", "ner,tagging"], "only: unknown tagging; choose from gemm, ner, tag, lm"),
    (["--threads", "1,x"], "threads: expected whole numbers >= 1"),
    (["--threads", "0"], "threads: expected whole numbers >= 1"),
    (["--only", ","], "only: expected a comma-separated list"),
])
def test_bad_options_get_one_line_errors(args, message):
    result = runner.invoke(app, ["bench", "--no-torch", *args])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_parsers():
    assert parse_threads(" 1, 2 ") == (1, 2)
    assert parse_list("ner,lm", "only", ("ner", "lm")) == ("ner", "lm")


def test_script_is_the_same_command():
    result = subprocess.run([sys.executable, "scripts/bench.py", "--only", "nope", "--no-torch"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "only: unknown nope" in result.stderr
