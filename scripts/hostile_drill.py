"""Hostile-user drill: bad files, broken models, bad options, hostile environments, bad pipelines and faults
(SIGINT / SIGTERM / kill -9 during training and during a save, a second training in the same directory, full and
read-only disks) against every `winner` command, each in a fresh subprocess of the installed command.

Each case must end as expected: a failure exits with its code and exactly one `error: …` line on stderr that
names what was wrong (commands that train may print their progress lines before it); a valid variant exits 0.
Never a traceback, never a death by signal, and nothing the user had is lost.

    python scripts/hostile_drill.py             # every case, a summary at the end; exit 1 if any failed
    python scripts/hostile_drill.py -k model    # only the cases whose name contains "model"

tests/test_hostile.py runs the same cases with pytest.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WINNER = str(Path(sys.executable).with_name("winner"))
WIKI_DEV, WIKI_TEST = ROOT / "data/wikigold/dev.conll", ROOT / "data/wikigold/test.conll"
TINY = ["--embeddings", "none", "--hidden", "16", "--batch-size", "16", "--quiet"]
NER_TINY = ["--train", str(WIKI_DEV), "--dev", str(WIKI_TEST), *TINY]
SENTENCE = "John Smith flew to Paris on Monday .\n"


# ---------------------------------------------------------------- running winner


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float


def winner(args: list[str], cwd: Path, stdin: bytes | None = None, env: dict | None = None,
           timeout: float = 300, shell_tail: str = "") -> Result:
    """The installed winner command in a fresh process (through a shell when `shell_tail` pipes or redirects)."""
    t0 = time.monotonic()
    full_env = {**os.environ, **(env or {})}
    if shell_tail:
        command = " ".join(subprocess.list2cmdline([a]) if a else "''" for a in [WINNER, *args]) + shell_tail
        done = subprocess.run(["bash", "-c", command], cwd=cwd, input=stdin, capture_output=True, env=full_env,
                              timeout=timeout)
    else:
        done = subprocess.run([WINNER, *args], cwd=cwd, input=stdin, capture_output=True, env=full_env,
                              timeout=timeout)
    return Result(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"),
                  time.monotonic() - t0)


def judge(result: Result, expect: int, words: tuple[str, ...], strict: bool) -> str | None:
    """None if `result` is as expected, else what is wrong (one line)."""
    if "Traceback" in result.stderr:
        return f"traceback: {result.stderr.strip().splitlines()[-1][:200]}"
    if result.code < 0 or result.code > 128 + 64 or result.code in (128 + 9, 128 + 11, 128 + 6):
        return f"died of a signal (exit {result.code})"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if expect == 0:
        if result.code != 0:
            return f"exit {result.code}, expected 0: {lines[-1][:200] if lines else ''}"
        return None
    if result.code != expect:
        return f"exit {result.code}, expected {expect}: {lines[-1][:200] if lines else '(no stderr)'}"
    errors = [line for line in lines if line.startswith("error")]
    if len(errors) != 1 or lines[-1] != errors[0]:
        return f"{len(errors)} error lines, the last line is {lines[-1][:120] if lines else None!r}"
    if strict and len(lines) != 1:
        return f"{len(lines)} lines on stderr, expected 1: {lines[0][:120]!r}"
    missing = [w for w in words if w.lower() not in errors[0].lower()]
    if missing:
        return f"the error does not name {missing}: {errors[0][:200]}"
    return None


# ---------------------------------------------------------------- the shared runs


@dataclass
class Runs:
    """Tiny trained runs every case may copy, and a work directory per case."""

    root: Path
    ner: Path = field(init=False)
    score: Path = field(init=False)
    lm: Path = field(init=False)
    ngram: Path = field(init=False)
    corpus: Path = field(init=False)

    def __post_init__(self) -> None:
        self.ner, self.score, self.lm, self.ngram = (self.root / n for n in ("ner", "score", "lm", "ngram"))
        self.corpus = self.root / "corpus.txt"

    def build(self) -> None:
        """Train the runs (about a minute in all, mostly numba loading its cache)."""
        with gzip.open(ROOT / "data/brown/train.tokens.txt.gz", "rt", encoding="utf-8") as f:
            lines = [next(f) for _ in range(3000)]
        self.corpus.write_text("".join(lines), encoding="utf-8")
        jobs = {self.ner: ["ner", "train", *NER_TINY, "--epochs", "2", "--out", str(self.ner)],
                self.score: ["score", "train", "--train", str(WIKI_DEV), "--dev", str(WIKI_TEST), *TINY,
                             "--epochs", "1", "--out", str(self.score)],
                self.lm: ["lm", "train", "--corpus", str(self.corpus), "--hidden", "16", "--embed-dim", "8",
                          "--epochs", "1", "--quiet", "--out", str(self.lm)],
                self.ngram: ["lm", "ngram", "--corpus", str(self.corpus), "--order", "3", "--out", str(self.ngram)]}
        for out, args in jobs.items():
            if not (out / "model").is_dir():
                done = winner(args, self.root)
                if done.code != 0:
                    raise SystemExit(f"could not build {out}: {done.stderr[-2000:]}")

    def fields(self, work: Path) -> dict[str, str]:
        return {"ner": str(self.ner), "score": str(self.score), "lm": str(self.lm), "ngram": str(self.ngram),
                "corpus": str(self.corpus), "d": str(work), "dev": str(WIKI_DEV), "test": str(WIKI_TEST),
                "run": str(work / "run")}


# ---------------------------------------------------------------- cases


@dataclass
class Case:
    """One hostile input: `args` (formatted with Runs.fields: {ner}, {d}, {run}, …), the files `setup` makes in
    the case's directory, the exit code expected (0: a valid variant), words the error line must name, and
    `check`, which returns what was lost or wrong afterwards (None when all is well)."""

    name: str
    family: str
    args: list[str]
    expect: int = 1
    words: tuple[str, ...] = ()
    setup: Callable[[Path, Runs], None] | None = None
    check: Callable[[Path, Result], str | None] | None = None
    stdin: bytes | None = None
    env: dict = field(default_factory=dict)
    strict: bool = True  # exactly one stderr line (commands that train print progress before an error)
    shell_tail: str = ""
    drill: Callable[[Case, Path, Runs], str | None] | None = None  # a fault drill that runs winner itself
    needs_root: bool = False


def write(name: str, content: bytes | str) -> Callable[[Path, Runs], None]:
    def setup(d: Path, runs: Runs) -> None:
        (d / name).write_bytes(content.encode() if isinstance(content, str) else content)

    return setup


def copy_run(which: str, then: Callable[[Path], None] | None = None) -> Callable[[Path, Runs], None]:
    """Copy a trained run to {run}, then break it with `then(model_dir)`."""

    def setup(d: Path, runs: Runs) -> None:
        shutil.copytree(getattr(runs, which), d / "run")
        (d / "s.txt").write_text(SENTENCE)
        if then is not None:
            then(d / "run" / "model")

    return setup


def arrays(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(model: Path) -> None:
        with np.load(model / "params.npz") as f:
            a = {k: f[k] for k in f.files}
        change(a)
        np.savez(model / "params.npz", **a)

    return apply


def config(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(model: Path) -> None:
        c = json.loads((model / "config.json").read_text())
        change(c)
        (model / "config.json").write_text(json.dumps(c))

    return apply


def truncate(model: Path) -> None:
    data = (model / "params.npz").read_bytes()
    (model / "params.npz").write_bytes(data[: len(data) // 2])


def unchanged(*names: str) -> Callable[[Path, Result], str | None]:
    """Check that the files `names` (relative to the case directory) still hold what setup wrote."""

    def check(d: Path, result: Result) -> str | None:
        for n in names:
            if not (d / n).exists():
                return f"{n} is gone"
        return None

    return check


def output_has_no(*bad: str) -> Callable[[Path, Result], str | None]:
    def check(d: Path, result: Result) -> str | None:
        found = [b for b in bad if b in result.stdout]
        return f"the output holds {found!r}" if found else None

    return check


TAG = ["ner", "tag", "{run}"]

FILES = [
    Case("tag a missing file", "files", [*TAG, "{d}/missing.txt"], words=("missing.txt",), setup=copy_run("ner")),
    Case("tag an empty directory", "files", [*TAG, "{d}/empty"], words=("empty",),
         setup=lambda d, r: (copy_run("ner")(d, r), (d / "empty").mkdir())),
    Case("tag latin-1 text", "files", [*TAG, "{d}/latin.txt"], words=("latin.txt:1", "UTF-8"),
         setup=lambda d, r: (copy_run("ner")(d, r), write("latin.txt", b"caf\xe9 au lait\n")(d, r))),
    Case("tag a binary file", "files", [*TAG, "{d}/bin"], words=("bin:1", "binary"),
         setup=lambda d, r: (copy_run("ner")(d, r), write("bin", bytes(range(256)) * 8)(d, r))),
    Case("tag binary standard input", "files", [*TAG, "-"], words=("binary",), stdin=bytes(range(256)) * 8,
         setup=copy_run("ner")),
    Case("tag a file with a BOM", "files", [*TAG, "{d}/bom.txt"], expect=0, check=output_has_no("\ufeff"),
         setup=lambda d, r: (copy_run("ner")(d, r), write("bom.txt", "\ufeff" + SENTENCE)(d, r))),
    Case("tag text with NUL bytes", "files", [*TAG, "-"], words=("NUL",), stdin=b"John\x00Smith flew .\n",
         setup=copy_run("ner")),
    Case("tag /dev/stdin", "files", [*TAG, "/dev/stdin"], expect=0, stdin=SENTENCE.encode(), setup=copy_run("ner"),
         check=lambda d, r: None if "Paris" in r.stdout else f"lost the input: {r.stdout!r}"),
    Case("tag <(a pipe)", "files", TAG, expect=0, setup=copy_run("ner"), shell_tail=" <(printf 'John went to Rome .')",
         check=lambda d, r: None if "Rome" in r.stdout else f"lost the input: {r.stdout!r}"),
    Case("tag a pipe as CoNLL", "files", [*TAG, "/dev/stdin", "--input-format", "conll"], stdin=b"John B-PER\n",
         setup=copy_run("ner"), words=("regular file",)),
    Case("tag CoNLL with a bad tag: read as CoNLL, not text", "files", [*TAG, "{d}/bad.conll"], expect=0,
         check=lambda d, r: None if r.stdout.startswith("John B-PER ") and len(r.stdout.splitlines()) == 3
         else f"tagged as text: {r.stdout!r}",
         setup=lambda d, r: (copy_run("ner")(d, r), write("bad.conll", "John B-PER\nSmith Q-PER\nleft O\n")(d, r))),
    Case("tag short text lines ending in I-9: read as text", "files", [*TAG, "{d}/t.txt"], expect=0,
         check=lambda d, r: None if "Call" in r.stdout else f"not tagged as text: {r.stdout!r}",
         setup=lambda d, r: (copy_run("ner")(d, r), write("t.txt", "Call form I-9\nSee form I-9\n")(d, r))),
    Case("evaluate a missing file", "files", ["ner", "evaluate", "{ner}", "--data", "{d}/missing.conll"],
         words=("missing.conll",)),
    Case("evaluate a directory", "files", ["ner", "evaluate", "{ner}", "--data", "{d}"], words=("directory",)),
    Case("evaluate a one-column CoNLL line", "files", ["ner", "evaluate", "{ner}", "--data", "{d}/x.conll"],
         words=("x.conll:2",), setup=write("x.conll", "John B-PER\nSmith\n")),
    Case("train on an empty file", "files", ["ner", "train", *NER_TINY, "--train", "{d}/e.conll", "--out", "{run}"],
         words=("e.conll",), setup=write("e.conll", "")),
    Case("train without entities", "files", ["ner", "train", *NER_TINY, "--train", "{d}/o.conll", "--out", "{run}"],
         words=("no entities",), setup=write("o.conll", "Nothing O\nhere O\n")),
    Case("train on latin-1", "files", ["ner", "train", *NER_TINY, "--train", "{d}/l.conll", "--out", "{run}"],
         words=("UTF-8",), setup=write("l.conll", b"caf\xe9 B-LOC\n")),
    Case("vectors with NaN", "files", ["ner", "train", *NER_TINY, "--embeddings", "{d}/v.txt", "--out", "{run}"],
         words=("NaN",), setup=write("v.txt", "the 0.1 0.2\ncat nan 0.1\n")),
    Case("vectors with ragged rows", "files", ["ner", "train", *NER_TINY, "--embeddings", "{d}/v.txt",
                                               "--out", "{run}"], words=("v.txt",),
         setup=write("v.txt", "the 0.1 0.2\ncat 0.1\n")),
    Case("vectors with a duplicate word", "files", ["ner", "train", *NER_TINY, "--embeddings", "{d}/v.txt",
                                                    "--out", "{run}"], words=("v.txt:3", "the"),
         setup=write("v.txt", "the 0.1 0.2\ncat 0.3 0.1\nthe 0.5 0.5\n")),
    Case("missing vectors file", "files", ["ner", "train", *NER_TINY, "--embeddings", "{d}/none.txt",
                                           "--out", "{run}"], words=("none.txt",)),
    Case("score windows of a file named as TEXT: its text", "files", ["score", "windows", "{score}", "{d}/s.txt"],
         expect=0, setup=write("s.txt", SENTENCE), check=lambda d, r: None if "Paris" in r.stdout and "s.txt" not in
         r.stdout else f"scored the path: {r.stdout[:200]!r}"),
    Case("lm train on a missing corpus", "files", ["lm", "train", "--corpus", "{d}/none.txt", "--out", "{run}"],
         words=("none.txt",)),
    Case("lm train on an empty corpus", "files", ["lm", "train", "--corpus", "{d}/e.txt", "--out", "{run}"],
         words=("e.txt",), setup=write("e.txt", "")),
    Case("lm perplexity of binary text", "files", ["lm", "perplexity", "{lm}", "--text", "{d}/b.txt"],
         words=("UTF-8",), setup=write("b.txt", bytes(range(256)) * 4)),
    Case("embeddings export to a directory", "files", ["embeddings", "export", "{ner}", "{d}"], expect=2,
         words=("directory",)),
    Case("tag --out a directory", "files", ["ner", "tag", "{ner}", "-", "--out", "{d}"], stdin=SENTENCE.encode(),
         words=("directory",)),
    Case("evaluate --predictions a directory", "files", ["ner", "evaluate", "{ner}", "--data", "{test}",
                                                         "--predictions", "{d}"], expect=2, words=("--predictions",)),
    Case("lm perplexity of /dev/stdin", "files", ["lm", "perplexity", "{lm}", "--text", "/dev/stdin"], expect=0,
         stdin=b"the jury said\n"),
    Case("init config over a file", "files", ["init", "config", "{d}/c.toml"], words=("--force",),
         setup=write("c.toml", "mine"), check=lambda d, r: None if (d / "c.toml").read_text() == "mine"
         else "c.toml was overwritten"),
]

MODELS = [
    Case(f"model: {name}", "models", [*TAG, "{d}/s.txt"], words=(word,), setup=copy_run("ner", breaks))
    for name, breaks, word in [
        ("truncated params", truncate, "params.npz"),
        ("empty params", lambda m: (m / "params.npz").write_bytes(b""), "params.npz"),
        ("string dtype", arrays(lambda a: a.__setitem__("W0", a["W0"].astype(str))), "real numbers"),
        ("complex dtype", arrays(lambda a: a.__setitem__("W0", a["W0"].astype(complex))), "real numbers"),
        ("NaN parameter", arrays(lambda a: a["W0"].__setitem__((0, 0), np.nan)), "NaN"),
        ("window disagreeing with the shapes", config(lambda c: c["tagger"].__setitem__("window", 3)), "window"),
        ("missing config key", config(lambda c: c["mlp"].__delitem__("embed_dim")), "embed_dim"),
        ("missing parameter", arrays(lambda a: a.pop("b0")), "b0"),
        ("negative window", config(lambda c: c["tagger"].__setitem__("window", -1)), "window"),
        ("hidden 10^12", config(lambda c: c["mlp"].__setitem__("hidden", [10**12])), "expected"),
        ("unknown scheme", config(lambda c: c["tagger"].__setitem__("scheme", "bogus")), "scheme"),
        ("config is a list", lambda m: (m / "config.json").write_text("[1, 2]"), "JSON object"),
        ("config is not JSON", lambda m: (m / "config.json").write_text("{oops"), "config.json"),
        ("vocabulary without <unk>", lambda m: (m / "vocab.json").write_text(json.dumps(
            [w if w != "<unk>" else "zzz" for w in json.loads((m / "vocab.json").read_text())])), "<unk>"),
        ("no model files", lambda m: [p.unlink() for p in m.iterdir()], "config.json"),
    ]
] + [
    Case("model: an LM given to ner tag", "models", ["ner", "tag", "{lm}", "-"], stdin=SENTENCE.encode(),
         words=("lm",)),
    Case("model: a tagger given to lm generate", "models", ["lm", "generate", "{ner}"], words=("tagger",)),
    Case("model: lm with a NaN parameter", "models", ["lm", "perplexity", "{run}"], words=("NaN",),
         setup=copy_run("lm", arrays(lambda a: a["E"].__setitem__((0, 0), np.inf)))),
    Case("model: scorer with truncated params", "models", ["score", "windows", "{run}", "-"], words=("params.npz",),
         stdin=SENTENCE.encode(), setup=copy_run("score", truncate)),
    Case("model: serve a broken model", "models", ["serve", "{run}", "--port", "0"], words=("config.json",),
         setup=copy_run("ner", lambda m: (m / "config.json").write_text("{oops"))),
    Case("model: a model/ symlink", "models", [*TAG, "{d}/s.txt"], expect=0,
         setup=copy_run("ner", lambda m: (os.replace(m, m.with_name("real")), m.symlink_to("real")))),
]

OPTIONS = [
    Case(f"option: {name}", "options", args, expect=code, words=words)
    for name, args, code, words in [
        ("epochs 0", ["ner", "train", "--epochs", "0", "--out", "{run}"], 2, ("--epochs", ">= 1")),
        ("lr not a number", ["ner", "train", "--lr", "fast", "--out", "{run}"], 2, ("--lr", "number")),
        ("negative seed", ["ner", "train", "--seed", "-5", "--out", "{run}"], 2, ("--seed",)),
        ("seed 10^23", ["score", "train", "--seed", str(10**23), "--out", "{run}"], 2, ("--seed",)),
        ("hidden not sizes", ["ner", "train", "--hidden", "x", "--out", "{run}"], 2, ("--hidden",)),
        ("hidden zero", ["ner", "train", "--hidden", "0,5", "--out", "{run}"], 2, ("--hidden",)),
        ("dropout 1.5", ["lm", "train", "--dropout", "1.5", "--out", "{run}"], 2, ("--dropout", "0.99")),
        ("window -1", ["ner", "train", "--window", "-1", "--out", "{run}"], 2, ("--window",)),
        ("unknown scheme", ["ner", "train", "--scheme", "bio", "--out", "{run}"], 2, ("--scheme", "iob2")),
        ("unknown option", ["ner", "train", "--epoch", "3", "--out", "{run}"], 2, ("--epoch", "--epochs")),
        ("unknown command", ["ner", "trian"], 2, ("trian",)),
        ("missing argument", ["ner", "tag"], 2, ("RUN_DIR",)),
        ("missing option", ["ner", "evaluate", "{ner}"], 2, ("--data",)),
        ("missing --out", ["ner", "train", "--epochs", "1"], 2, ("--out",)),
        ("option without its value", ["lm", "generate", "{lm}", "--temperature"], 2, ("--temperature",)),
        ("resume and overwrite", ["ner", "train", *NER_TINY, "--resume", "--overwrite", "--out", "{run}"], 2,
         ("contradict",)),
        ("negative temperature", ["lm", "generate", "{lm}", "--temperature", "-1"], 2, ("--temperature",)),
        ("negative words", ["lm", "generate", "{lm}", "-n", "-3"], 2, ("--words",)),
        ("port 70000", ["serve", "{ner}", "--port", "70000"], 2, ("--port", "65535")),
        ("neighbours 0", ["embeddings", "neighbors", "{ner}", "Paris", "-n", "0"], 2, ("--number",)),
        ("negative workers", ["ner", "tag", "{ner}", "-", "--workers", "-1"], 2, ("--workers",)),
        ("tag format", ["ner", "tag", "{ner}", "-", "--format", "xml"], 2, ("--format", "conll")),
        ("init config head", ["init", "config", "--head", "pos"], 2, ("--head", "ner")),
        ("ngram order 0", ["lm", "ngram", "--order", "0", "--out", "{run}"], 2, ("--order",)),
        ("missing --config file", ["ner", "train", "--config", "{d}/none.toml"], 2, ("--config", "none.toml")),
        ("unknown word to neighbours", ["embeddings", "neighbors", "{ner}", "zzzqqq"], 1, ("zzzqqq",)),
        ("mixture weights not numbers", ["lm", "perplexity", "{lm}", "{ngram}", "--mix-weights", "0.5,x"], 1,
         ("weights",)),
        ("bench with one repeat", ["bench", "--repeats", "1"], 2, ("--repeats", ">= 3")),
        ("gradcheck with an argument", ["gradcheck", "extra"], 2, ("extra",)),
        ("sweep grid without values", ["sweep", "{d}/p.toml", "--grid", "epochs"], 1, ("--grid",)),
    ]
] + [
    Case("option: hidden too big for memory", "options", ["ner", "train", *NER_TINY, "--hidden", str(10**9),
                                                          "--out", "{run}"], words=("needs", "memory", "--hidden"),
         strict=False),
    Case("option: char filters too big for memory", "options",
         ["ner", "train", *NER_TINY, "--char-filters", str(10**8), "--out", "{run}"], words=("needs", "memory"),
         strict=False),
    Case("option: corrupt windows too many for memory", "options",
         ["score", "train", "--train", "{dev}", "--dev", "{test}", *TINY, "--corrupt-per-true", str(10**9),
          "--out", "{run}"], words=("memory",), strict=False),
    Case("option: batch far larger than the data", "options",
         ["ner", "train", *NER_TINY, "--epochs", "1", "--batch-size", str(10**9), "--out", "{run}"], expect=0),
    Case("option: config with a bad value", "options", ["ner", "train", "--config", "{d}/c.toml", "--out", "{run}"],
         words=("c.toml", "epochs"), setup=write("c.toml", "epochs = -3\n")),
    Case("option: config with an unknown key", "options",
         ["ner", "train", "--config", "{d}/c.toml", "--out", "{run}"], words=("c.toml", "epoch"),
         setup=write("c.toml", "epoch = 3\n")),
    Case("option: binary config", "options", ["ner", "train", "--config", "{d}/c.toml", "--out", "{run}"],
         words=("c.toml",), setup=write("c.toml", b"\x00\xff\xfe")),
]
for case in OPTIONS:
    if case.name.startswith("option: sweep"):
        case.setup = write("p.toml", '[[step]]\nrun = "ner train"\n')


def port_in_use(case: Case, d: Path, runs: Runs) -> str | None:
    """`serve` on a port another program listens on: one line naming the address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = winner(["serve", str(runs.ner), "--port", str(port)], d, timeout=60)
    return judge(result, 1, (f"127.0.0.1:{port}", "in use"), True)


def hub_offline(case: Case, d: Path, runs: Runs) -> str | None:
    """A Hugging Face name with no network (a dead proxy: the same, wherever the drill runs) fails fast."""
    result = winner(["ner", "evaluate", str(runs.ner), "--data", "nosuchuser/nosuchdataset"], d,
                    env={"HF_HUB_OFFLINE": "0", "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    problem = judge(result, 1, ("nosuchuser/nosuchdataset",), True)
    if problem is None and result.seconds > 5:
        return f"took {result.seconds:.1f}s"
    return problem


ENVIRONMENT = [
    Case("env: WINNER_THREADS=abc", "environment", ["ner", "tag", "{ner}", "-"], stdin=SENTENCE.encode(),
         env={"WINNER_THREADS": "abc"}, words=("WINNER_THREADS",)),
    Case("env: WINNER_THREADS=0", "environment", ["ner", "tag", "{ner}", "-"], stdin=SENTENCE.encode(),
         env={"WINNER_THREADS": "0"}, words=("WINNER_THREADS",)),
    Case("env: gradcheck with WINNER_THREADS=-2", "environment", ["gradcheck"], env={"WINNER_THREADS": "-2"},
         words=("WINNER_THREADS",)),
    Case("env: WINNER_BLAS=bogus", "environment", ["ner", "tag", "{ner}", "-"], stdin=SENTENCE.encode(),
         env={"WINNER_BLAS": "bogus"}, words=("WINNER_BLAS",)),
    Case("env: C locale, UTF-8 text", "environment", ["ner", "tag", "{ner}", "-"], expect=0,
         stdin="Zoë Müller visited Zürich .\n".encode(), env={"LC_ALL": "C", "LANG": "C"}),
    Case("env: output to a full device", "environment", ["ner", "tag", "{ner}", "-"], stdin=SENTENCE.encode() * 50,
         shell_tail=" > /dev/full", words=("No space left",)),
    Case("env: output into a closed pipe: ends quietly", "environment", ["ner", "tag", "{ner}", "-"], expect=0,
         stdin=SENTENCE.encode() * 2000, shell_tail=" | head -n 1 >/dev/null; exit ${PIPESTATUS[0]}"),
    Case("env: serve on a port in use", "environment", ["serve"], drill=port_in_use),
    Case("env: serve on an unknown host", "environment", ["serve", "{ner}", "--host", "no.such.host.invalid"],
         words=("no.such.host.invalid",)),
    Case("env: hub dataset with no network", "environment", ["ner", "evaluate", "{ner}"], drill=hub_offline),
    Case("env: unwritable cache", "environment", ["ner", "tag", "{ner}", "-"], expect=0, stdin=SENTENCE.encode(),
         env={"WINNER_CACHE": "/proc/nope", "NUMBA_CACHE_DIR": "/proc/nope"}),
]

STEP = '[[step]]\nrun = "ner evaluate"\ndata = "x"\n'
PIPELINES = [
    Case(f"pipeline: {name}", "pipelines", ["run", "{d}/p.toml", *extra], words=(word,),
         setup=write("p.toml", text), check=lambda d, r: None if sorted(p.name for p in d.iterdir()) == ["p.toml"]
         else f"wrote {sorted(p.name for p in d.iterdir())}")
    for name, text, extra, word in [
        ("unknown top-level key", 'outt = "a"\n' + STEP, [], "outt"),
        ("unknown table", "[varz]\na = 1\n" + STEP, [], "varz"),
        ("vars not a table", "vars = 3\n" + STEP, [], "vars"),
        ("step not a table", 'step = ["x"]\n', [], "step"),
        ("name escaping runs/", 'name = "../../evil"\n' + STEP, [], "name"),
        ("step-level out", STEP + 'out = "elsewhere"\n', [], "out"),
        ("recursive variable", '[vars]\na = "${b}"\nb = "${a}"\n' + STEP, [], "itself"),
        ("unresolved variable", '[vars]\na = "${c}"\n' + STEP, [], "${{c}}"),
        ("wrongly typed value", '[[step]]\nrun = "ner train"\nepochs = "many"\n', [], "epochs"),
        ("value out of range", '[[step]]\nrun = "ner train"\nepochs = 0\n', [], "epochs"),
        ("binary bytes", b"\x00\xff\xfe binary", [], "UTF-8"),
        ("unknown step", '[[step]]\nrun = "rm -rf /"\n', [], "rm -rf"),
        ("--set of no variable", '[vars]\na = 1\n' + STEP, ["--set", "zzz=1"], "zzz"),
        ("--set without =", STEP, ["--set", "epochs"], "NAME=VALUE"),
        ("not TOML", "[[step\n", [], "p.toml"),
    ]
]


# ---------------------------------------------------------------- fault drills


def _checkpoint_epoch(run: Path) -> int:
    try:
        return json.loads((run / "checkpoint" / "state.json").read_text())["loop"]["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def _epochs(run: Path) -> list[int]:
    return [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def _train_until_checkpoint(run: Path, d: Path, epochs: int = 40) -> subprocess.Popen:
    args = [WINNER, "ner", "train", *NER_TINY, "--epochs", str(epochs), "--patience", str(epochs), "--out", str(run)]
    process = subprocess.Popen(args, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while _checkpoint_epoch(run) < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"training ended before its second checkpoint: {process.stderr.read()[-500:]!r}")
        time.sleep(0.01)
    return process


def signal_drill(sig: signal.Signals, code: int) -> Callable[[Case, Path, Runs], str | None]:
    def drill(case: Case, d: Path, runs: Runs) -> str | None:
        run = d / "run"
        process = _train_until_checkpoint(run, d)
        process.send_signal(sig)
        _, err = process.communicate(timeout=120)
        problem = judge(Result(process.returncode, "", err.decode(), 0), code, ("--resume", "checkpoint"), False)
        if problem:
            return problem
        stopped = _checkpoint_epoch(run)
        if not (run / "model" / "params.npz").is_file():
            return "no model kept"
        resumed = winner(["ner", "train", *NER_TINY, "--epochs", str(stopped + 1), "--patience", "40",
                          "--out", str(run), "--resume"], d)
        if resumed.code != 0:
            return f"resume failed: {resumed.stderr[-300:]}"
        return None if _epochs(run) == list(range(1, stopped + 2)) else f"epochs logged {_epochs(run)}"

    return drill


def kill9_drill(case: Case, d: Path, runs: Runs) -> str | None:
    """kill -9 mid-training, then --resume: every epoch logged once, no leftover temporaries."""
    run = d / "run"
    process = _train_until_checkpoint(run, d)
    process.kill()
    process.wait()
    stopped = _checkpoint_epoch(run)
    resumed = winner(["ner", "train", *NER_TINY, "--epochs", str(stopped + 1), "--patience", "40", "--out", str(run),
                      "--resume"], d)
    if resumed.code != 0:
        return f"resume failed: {resumed.stderr[-300:]}"
    hidden = sorted(p.name for p in run.iterdir() if p.name.startswith("."))
    if hidden:
        return f"left {hidden}"
    return None if _epochs(run) == list(range(1, stopped + 2)) else f"epochs logged {_epochs(run)}"


def killed_save_drill(case: Case, d: Path, runs: Runs) -> str | None:
    """What a kill -9 between a save's two renames leaves: `.model.old` and no model/, plus a half-written
    temporary. Reading the run recovers it; a resumed training cleans the temporaries."""
    copy_run("ner")(d, runs)
    run = d / "run"
    os.replace(run / "model", run / ".model.old")
    (run / ".model.x1.tmp").mkdir()
    (run / ".model.x1.tmp" / "params.npz").write_bytes(b"half")
    problem = judge(winner(["ner", "tag", str(run), str(d / "s.txt")], d), 0, (), True)
    if problem:
        return problem
    if not (run / "model" / "params.npz").is_file():
        return "model/ was not recovered"
    problem = judge(winner(["ner", "train", *NER_TINY, "--epochs", "1", "--out", str(run), "--overwrite"], d), 0,
                    (), True)
    leftovers = sorted(p.name for p in run.iterdir() if p.name.startswith("."))
    return problem or (f"left {leftovers}" if leftovers else None)


def second_training_drill(case: Case, d: Path, runs: Runs) -> str | None:
    """A second training, resume or overwrite in a run directory another process trains in is refused, naming
    the directory and the holder; once the holder is killed -9, its lock is taken over."""
    run = d / "run"
    process = _train_until_checkpoint(run, d)
    try:
        for extra in (["--resume"], ["--overwrite"]):
            result = winner(["ner", "train", *NER_TINY, "--epochs", "3", "--out", str(run), *extra], d)
            problem = judge(result, 1, (str(run), f"pid {process.pid}"), True)
            if problem:
                return f"{extra[0]}: {problem}"
    finally:
        process.kill()
        process.wait()
    stopped = _checkpoint_epoch(run)
    result = winner(["ner", "train", *NER_TINY, "--epochs", str(stopped + 1), "--out", str(run), "--resume"], d)
    return judge(result, 0, (), True)


def _mount_tmpfs(d: Path, size: str) -> Path | None:
    disk = d / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        return None
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
    return disk if done.returncode == 0 else None


def full_disk_drill(case: Case, d: Path, runs: Runs) -> str | None:
    """Resume on a disk with no room for the next save: one line, the model and checkpoint as they were."""
    disk = _mount_tmpfs(d, "3m")
    if disk is None:
        return "skipped: needs root and mount"
    try:
        run = disk / "run"
        problem = judge(winner(["ner", "train", *NER_TINY, "--epochs", "1", "--keep-checkpoint", "--out", str(run)],
                               d), 0, (), True)
        if problem:
            return problem
        before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.parent.name != "run"}
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "ballast").write_bytes(b"0" * (free - 100_000))
        result = winner(["ner", "train", *NER_TINY, "--epochs", "2", "--resume", "--out", str(run)], d)
        problem = judge(result, 1, ("No space left",), False)
        after = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.parent.name != "run"}
        return problem or (None if after == before else "the model or checkpoint changed")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def read_only_drill(case: Case, d: Path, runs: Runs) -> str | None:
    """A read-only --out (a read-only mount: root ignores file modes): one line naming it, for a new run and for
    a resume."""
    disk = _mount_tmpfs(d, "8m")
    if disk is None:
        return "skipped: needs root and mount"
    try:
        shutil.copytree(runs.ner, disk / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        for out in ("new", "run"):
            extra = ["--resume"] if out == "run" else []
            result = winner(["ner", "train", *NER_TINY, "--out", str(disk / out), *extra], d)
            problem = judge(result, 1, (str(disk / out), "Read-only"), True)
            if problem:
                return f"{out}: {problem}"
        return None
    finally:
        subprocess.run(["umount", str(disk)], check=False)


FAULTS = [
    Case("fault: SIGINT during training", "faults", [], drill=signal_drill(signal.SIGINT, 130)),
    Case("fault: SIGTERM during training", "faults", [], drill=signal_drill(signal.SIGTERM, 143)),
    Case("fault: kill -9 during training, then resume", "faults", [], drill=kill9_drill),
    Case("fault: kill -9 during a save", "faults", [], drill=killed_save_drill),
    Case("fault: a second training in the same directory", "faults", [], drill=second_training_drill),
    Case("fault: a stale lock of a dead process", "faults",
         ["ner", "train", *NER_TINY, "--epochs", "1", "--out", "{run}"], expect=0,
         setup=lambda d, r: ((d / "run").mkdir(), (d / "run" / ".winner.lock").write_text("999999\n"))),
    Case("fault: full disk", "faults", [], drill=full_disk_drill, needs_root=True),
    Case("fault: read-only --out", "faults", [], drill=read_only_drill, needs_root=True),
    Case("fault: --out is a file", "faults", ["ner", "train", *NER_TINY, "--out", "{d}/f"], words=("not a directory",),
         setup=write("f", "keep"), check=lambda d, r: None if (d / "f").read_text() == "keep" else "f changed"),
    Case("fault: --out ''", "faults", ["ner", "train", *NER_TINY, "--out", ""], words=("--out",)),
    Case("fault: an existing run without --resume", "faults", ["ner", "train", *NER_TINY, "--out", "{run}"],
         words=("--resume", "--overwrite"), setup=copy_run("ner"), check=unchanged("run/model/params.npz")),
    Case("fault: lm ngram over an existing run", "faults", ["lm", "ngram", "--corpus", "{corpus}", "--order", "2",
                                                            "--out", "{run}"], words=("already holds a run",),
         setup=copy_run("ngram"), check=unchanged("run/model")),
    Case("fault: lm ngram --out ''", "faults", ["lm", "ngram", "--corpus", "{corpus}", "--out", ""],
         words=("--out",), check=lambda d, r: None if not (d / "model").exists() else "wrote model/ in the cwd"),
    Case("fault: --resume with nothing to resume", "faults",
         ["ner", "train", *NER_TINY, "--out", "{run}", "--resume"], words=("nothing to resume",)),
    Case("fault: --plot over a user's file", "faults", ["ner", "evaluate", "{ner}", "--data", "{test}", "--plot",
                                                        "{d}/v.txt"], words=("not a PNG",),
         setup=write("v.txt", "precious"), check=lambda d, r: None if (d / "v.txt").read_text() == "precious"
         else "v.txt was overwritten"),
    Case("fault: divergence", "faults", ["ner", "train", *NER_TINY, "--epochs", "2", "--lr", "1e6", "--out", "{run}"],
         words=("diverged",), strict=False),
]

VALID = [
    Case("valid: ner tag", "valid", ["ner", "tag", "{ner}", "-", "--format", "json"], expect=0,
         stdin=SENTENCE.encode()),
    Case("valid: ner explain", "valid", ["ner", "explain", "{ner}", "John lives in Paris ."], expect=0),
    Case("valid: ner evaluate", "valid", ["ner", "evaluate", "{ner}", "--data", "{test}", "--json"], expect=0),
    Case("valid: score windows", "valid", ["score", "windows", "{score}", "John lives in Paris ."], expect=0),
    Case("valid: lm perplexity", "valid", ["lm", "perplexity", "{lm}", "{ngram}", "--json"], expect=0),
    Case("valid: lm generate", "valid", ["lm", "generate", "{lm}", "-n", "5", "--prompt", "the jury"], expect=0),
    Case("valid: embeddings export", "valid", ["embeddings", "export", "{ner}", "{d}/v.txt"], expect=0),
    Case("valid: init config", "valid", ["init", "config", "--head", "lm"], expect=0),
    Case("valid: score explain", "valid", ["score", "explain", "{score}", "John lives in Paris ."], expect=0),
    Case("valid: score evaluate", "valid", ["score", "evaluate", "{score}", "--data", "{test}", "--json"], expect=0),
    Case("invalid: score evaluate on text", "valid", ["score", "evaluate", "{score}", "--data", "{d}/t.txt"],
         words=("t.txt",), setup=write("t.txt", "Just some words here\nand more words\n")),
    Case("invalid: explain nothing", "valid", ["ner", "explain", "{ner}", "-"], stdin=b"\n", words=("no words",)),
    Case("invalid: lm explain with a tagger", "valid", ["lm", "explain", "{ner}", "the jury"], words=("tagger",)),
]

CASES = [*FILES, *MODELS, *OPTIONS, *ENVIRONMENT, *PIPELINES, *FAULTS, *VALID]


def run_case(case: Case, work: Path, runs: Runs) -> str | None:
    """Run one case in its own directory `work`; None if it passed, else what went wrong."""
    work.mkdir(parents=True, exist_ok=True)
    if case.setup is not None:
        case.setup(work, runs)
    if case.drill is not None:
        return case.drill(case, work, runs)
    fields = runs.fields(work)
    args = [a.format(**fields) for a in case.args]
    result = winner(args, work, case.stdin, case.env, shell_tail=case.shell_tail)
    problem = judge(result, case.expect, tuple(w.format(**fields) for w in case.words), case.strict)
    if problem is None and case.check is not None:
        problem = case.check(work, result)
    return problem


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", default="", help="Only cases whose name contains this.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory.")
    parser.add_argument("--runs", type=Path, help="Keep the tiny trained runs here and reuse them next time.")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    runs = Runs(options.runs.resolve() if options.runs else root / "runs")
    runs.root.mkdir(parents=True, exist_ok=True)
    print(f"training the tiny runs in {runs.root} ...", flush=True)
    runs.build()
    cases = [c for c in CASES if options.k in c.name]
    failed, skipped = [], []
    t0 = time.monotonic()
    for i, case in enumerate(cases):
        t = time.monotonic()
        try:
            problem = run_case(case, root / f"case{i:03d}", runs)
        except Exception as e:  # the drill itself broke: report it as a failure, go on
            problem = f"drill error: {type(e).__name__}: {e}"
        status = "SKIP" if problem and problem.startswith("skipped") else "FAIL" if problem else "ok  "
        (skipped if status == "SKIP" else failed if problem else []).append((case, problem))
        print(f"{status} [{case.family}] {case.name} ({time.monotonic() - t:.1f}s)"
              + (f": {problem}" if problem else ""), flush=True)
    families = sorted({c.family for c in cases})
    print(f"\n{len(cases)} cases in {len(families)} families ({', '.join(families)}): "
          f"{len(cases) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} skipped "
          f"in {time.monotonic() - t0:.0f}s")
    for case, problem in failed:
        print(f"  FAILED {case.name}: {problem}")
    if not options.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
