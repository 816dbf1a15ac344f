"""Ray paths for real, on a local Ray that each command starts with 2 CPUs: distributed tagging (identical to one
process, resumable) and a sweep. Few and small: Ray's start-up dominates."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winner.data.resources import wikigold_path
from winner.data.stream import read_chunk, resolve_sources
from winner.heads.tagger import Tagger
from winner.heads.tagging import tag_chunk
from winner.heads.writers import WRITERS

pytest.importorskip("ray", reason='Ray is not installed: pip install -e ".[ray]" (the dev extra includes it)')
pytestmark = pytest.mark.slow

WINNER = str(Path(sys.executable).with_name("winner"))
runner = CliRunner()
CHUNK_MB = "0.002"  # 2 kB: the test corpus becomes a dozen chunks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    d.joinpath("a.conll").write_bytes(wikigold_path("test").read_bytes())
    d.joinpath("b.txt").write_text("John Smith lives in New York .\nThe European Union met in Brussels .\n" * 60)
    return d


def _tag(tagger: Path, corpus: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    r = subprocess.run([WINNER, "ner", "tag", str(tagger), str(corpus), "--format", "json", "-o", str(out), *extra],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def _chunks_per_node(stderr: str) -> dict[str, int]:
    line = next(x for x in stderr.splitlines() if x.startswith("chunks per node: "))
    return {node: int(k) for node, k in (item.rsplit(" ", 1) for item in line.split(": ", 1)[1].split(", "))}


def test_two_workers_resume_and_match_one_process(tiny_tagger, corpus, tmp_path):
    """Half the chunks are already finished (as a killed run leaves them): the Ray run tags only the rest, on
    two workers, and the joined output equals the single-process output byte for byte. The first run lets the
    driver tag while Ray starts (every chunk is counted once, by the driver or a node); the resumed one does not
    (every chunk on a Ray worker). A run with --consistency document reuses none of those parts."""
    single = tmp_path / "single.json"
    _tag(tiny_tagger, corpus, single)
    out = tmp_path / "ray.json"
    first = _tag(tiny_tagger, corpus, out, "--workers", "2", "--chunk-mb", CHUNK_MB)
    assert out.read_bytes() == single.read_bytes()
    n_chunks = int(first.stderr.split(" chunks,")[0].split()[-1])
    assert n_chunks >= 6 and sum(_chunks_per_node(first.stderr).values()) == n_chunks

    out.unlink()
    parts = _leave_killed_parts(tiny_tagger, corpus, out, n_chunks)
    resumed = _tag(tiny_tagger, corpus, out, "--workers", "2", "--chunk-mb", CHUNK_MB, "--no-driver-tags")
    done = (n_chunks + 1) // 2
    assert f"{n_chunks} chunks, {done} already done, {n_chunks - done} to tag" in resumed.stderr
    per_node = _chunks_per_node(resumed.stderr)
    assert "driver" not in per_node and sum(per_node.values()) == n_chunks - done
    assert out.read_bytes() == single.read_bytes()
    assert not parts.exists()

    # With another consistency the killed run's parts are not reused, and the output is one process's with it.
    voted_single = tmp_path / "voted.json"
    _tag(tiny_tagger, corpus, voted_single, "--consistency", "document")
    assert voted_single.read_bytes() != single.read_bytes()
    out.unlink()
    _leave_killed_parts(tiny_tagger, corpus, out, n_chunks)
    voted = _tag(tiny_tagger, corpus, out, "--workers", "2", "--chunk-mb", CHUNK_MB, "--no-driver-tags",
                 "--consistency", "document")
    assert f"{n_chunks} chunks, 0 already done, {n_chunks} to tag" in voted.stderr
    assert out.read_bytes() == voted_single.read_bytes()


def _leave_killed_parts(tagger_dir: Path, corpus: Path, out: Path, n_chunks: int) -> Path:
    """Leave the parts a killed run without --consistency would: the manifest and every other chunk, as that run
    wrote them; returns the parts directory."""
    from winner.heads.tagger import reads_documents
    from winner.scale.tagging import RayRun, _body_path, _done_path, _manifest, _prepare_parts, parts_dir, plan

    sources = resolve_sources([str(corpus)], "auto")
    chunks = plan(sources, int(float(CHUNK_MB) * 1e6), reads_documents(tagger_dir))
    assert len(chunks) == n_chunks
    parts = parts_dir(str(out))
    _prepare_parts(parts, _manifest(RayRun(tagger_dir, sources, parts, "json", None), chunks))
    tagger = Tagger.load(tagger_dir)
    for c in chunks[::2]:
        body = io.StringIO()
        counts = tag_chunk(tagger, read_chunk(sources[c.source], c), sources[c.source], body, "json", c.start == 0)
        _body_path(parts, c.index, WRITERS["json"].suffix).write_text(body.getvalue(), encoding="utf-8")
        _done_path(parts, c.index).write_text(json.dumps({"sentences": counts.sentences, "tokens": counts.tokens}))
    return parts


def test_sweep_ranks_trials_writes_best_toml_and_resumes(tmp_path):
    """Two NER configurations on 2 local workers: the table ranks them on dev F1, `winner run best.toml`
    reproduces the best trial's dev F1 exactly, and a re-run resumes the finished sweep instead of redoing it."""
    data = wikigold_path("dev").parent
    pipeline = tmp_path / "tiny.toml"
    pipeline.write_text(f"""
name = "tiny"
out = "{tmp_path}/unused"
[[step]]
run = "ner train"
train = "{data}/dev.conll"
dev = "{data}/test.conll"
embeddings = "none"
hidden = 8
char_filters = 0
average = 0
epochs = 2
quiet = true
""")
    out = tmp_path / "sweep"
    command = [WINNER, "sweep", str(pipeline), "--grid", "lr=0.004,0.01", "--workers", "2", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    rows = json.loads((out / "results.json").read_text())
    assert sorted(r["config"]["lr"] for r in rows) == ["0.004", "0.01"]
    scores = [r["best dev F1"] for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    assert (out / "results.csv").read_text().splitlines()[0].startswith("trial,lr,best dev F1")
    best = subprocess.run([WINNER, "run", str(out / "best.toml")], capture_output=True, text=True, timeout=600)
    assert best.returncode == 0, best.stderr
    assert json.loads((out / "best" / "summary.json").read_text())["best_dev_f1"] == scores[0]
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming the sweep" in again.stderr
    assert json.loads((out / "results.json").read_text()) == rows


def test_a_malformed_chunk_on_a_ray_worker_is_one_line(tiny_tagger, tmp_path):
    """The error a worker raises reaches the driver as itself (DataFormatError pickles with its fields), so the
    command prints the file, line and what was expected, not Ray's 'failed to deserialize' traceback."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    r = subprocess.run([WINNER, "ner", "tag", str(tiny_tagger), str(bad), "-o", str(tmp_path / "o"), "--workers", "2",
                        "--no-driver-tags"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"error: {bad}:2: expected UTF-8 text, found byte 0xff"
    assert "Traceback" not in r.stderr
