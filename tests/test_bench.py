"""The benchmark command: its report's shape and checks, and its answers to bad options (no timing asserted:
speed targets live in the benchmark's own output, not in tests)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
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


def _ab_bench_module():
    spec = importlib.util.spec_from_file_location("ab_bench", ROOT / "scripts" / "ab_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ab_bench_copies_a_commit_under_its_own_name(tmp_path, monkeypatch):
    """scripts/ab_bench.py imports a commit's package beside the installed one: every import in the copy names
    the copy, and it imports (numba compiles nothing until a kernel is called)."""
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: ab_bench reads commits with git archive")
    ab_bench = _ab_bench_module()
    monkeypatch.setattr(ab_bench, "COPIES", tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    name, pkg = ab_bench.package_copy("HEAD", "winner_abtest")
    assert name == "winner_abtest" and pkg.parent.parent == tmp_path
    for path in pkg.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"\b(from|import) winner\b|\bwinner\.(core|data|heads|cli)\b", text), path
    copy = importlib.import_module("winner_abtest.core.mlp")
    assert Path(copy.__file__).is_relative_to(pkg)
    assert ab_bench.package_copy(".", "unused") == ("winner", ROOT / "winner")


def test_ab_bench_times_the_working_tree(tmp_path):
    """The script end to end on the working tree given twice (its kernels are the suite's): a table line per copy,
    labelled #1 and #2, with the digest of the parameters it ended with, which two copies of one code share."""
    result = subprocess.run([sys.executable, "scripts/ab_bench.py", ".", ".", "--windows", "512", "--rounds", "3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "ner training, batch 128, 1 thread(s), 3 rounds of 512 windows"
    assert re.fullmatch(r"\s+\.#1\s+[\d,]+ windows/s \(best [\d,]+\)  ratio to \.#1: 1\.000 "
                        r"\(quartiles 1\.000-1\.000\)  parameters [0-9a-f]{12}", lines[1])
    assert re.fullmatch(r"\s+\.#2\s+[\d,]+ windows/s \(best [\d,]+\)  ratio to \.#1: [\d.]+ .*", lines[2])
    assert lines[1].split()[-1] == lines[2].split()[-1]


def _report(path: Path, figures: dict[tuple[str, int, int], float]) -> Path:
    rows = [{"workload": w, "batch": b, "threads": t, "unit": "windows/s", "winner": x}
            for (w, b, t), x in figures.items()]
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_bench_compare_judges_each_ratio_against_the_spread_within_a_version(tmp_path):
    """scripts/bench_compare.py: medians per group, after / before, and a verdict against the larger spread of
    one version's runs: -20% against 10% is slower, -4% against 4.2% within noise, +31% against 7.7% faster."""
    rows = [("ner train", 128, 1), ("ner train", 512, 1), ("tagging", 4096, 2)]
    before = [_report(tmp_path / f"b{i}.json", dict(zip(rows, v, strict=True)))
              for i, v in enumerate([(100, 100, 100), (110, 104, 101), (105, 102, 99)])]
    after = [_report(tmp_path / f"a{i}.json", dict(zip(rows, v, strict=True)))
             for i, v in enumerate([(84, 100, 130), (80, 96, 131), (85, 98, 140)])]
    result = subprocess.run([sys.executable, "scripts/bench_compare.py", *map(str, before), "vs", *map(str, after)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    table = [line.split() for line in result.stdout.splitlines()[2:]]
    assert table == [["ner", "train", "128", "1", "105", "84", "0.800", "10.0%", "slower"],
                     ["ner", "train", "512", "1", "102", "98", "0.961", "4.2%", "within", "noise"],
                     ["tagging", "4096", "2", "100", "131", "1.310", "7.7%", "faster"]]


def test_bench_compare_refuses_a_file_that_is_not_a_report_and_groups_without_vs(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2]")
    env = {**os.environ, "COLUMNS": "250"}  # typer's error box would wrap a long path
    for args, message in ([str(bad), "vs", str(bad)], f"{bad}: not a bench.py --out report"), \
                         ([str(bad), str(bad)], "give the reports before, then vs, then the reports after"):
        result = subprocess.run([sys.executable, "scripts/bench_compare.py", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        assert message in " ".join(result.stderr.replace("│", " ").split())
