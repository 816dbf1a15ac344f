"""Every inference path in fresh processes of the installed `winner` command, twice, over one numba cache.

numba's cache outlives a process: a kernel loaded from it in a process that has not launched numba's
threading layer crashed (exit 139) when its call graph reached a `parallel=True` kernel. An in-process
CliRunner test cannot see that, so here one subprocess trains a tiny tagger, scorer and language model over a
private NUMBA_CACHE_DIR, then each inference command runs in new subprocesses, twice for each thread setting,
and must exit 0 with the same output every time. The other order (an inference process fills an empty cache
first) is checked too.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from winner.data.resources import brown_stream_path, wikigold_path

pytestmark = pytest.mark.slow

WINNER = str(Path(sys.executable).with_name("winner"))
SENTENCE = "John Smith flew to Paris on Monday .\nThe United Nations met in New York .\n"

TRAIN_ALL = """
from winner.cli.app import app
import sys
for args in sys.argv[1:]:
    try:
        app(args.split("\\t"), standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise
"""

PYTHON_CLASSES = """
import sys
import numpy as np
from winner.heads.lm import LanguageModel
from winner.heads.model_io import resolve_model_dir
import winner
from winner.heads.scorer import load_scorer
tagger_dir, scorer_dir, lm_dir = sys.argv[1:4]
print(winner.load(tagger_dir)(["John", "Smith", "flew", "to", "Paris", "."]).tags)
scorer = load_scorer(scorer_dir)
print(scorer.score([["Not", "all", "museums", "in", "Paris", "are", "amazing"]]))
lm = LanguageModel.load(resolve_model_dir(lm_dir))
print(lm.generate(["the", "jury", "said"], 8, seed=3))
"""


def _env(cache: Path, work: Path, threads: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WINNER_THREADS", "NUMBA_NUM_THREADS")}
    env.update(NUMBA_CACHE_DIR=str(cache), WINNER_CACHE=str(work / "winner-cache"), PYTHONFAULTHANDLER="1")
    if threads is not None:
        env["WINNER_THREADS"] = threads
    return env


def _run(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, timeout=600)


def _tiny_inputs(root: Path) -> dict[str, Path]:
    """A word2vec text file for the tagger's words, a 40-line CoNLL file and a small plain-text corpus."""
    rng = np.random.default_rng(0)
    lines = wikigold_path("dev").read_text(encoding="utf-8").splitlines()
    words = sorted({line.split()[0] for line in lines if line.strip()})
    vectors = root / "vectors.txt"
    vectors.write_text(f"{len(words)} 8\n" + "".join(
        w + " " + " ".join(f"{x:.4f}" for x in rng.normal(size=8)) + "\n" for w in words), encoding="utf-8")
    small = root / "small.conll"
    start = next(i for i in range(len(lines)) if (i == 0 or not lines[i - 1].strip())
                 and any(line.endswith("LOC") for line in lines[i:i + 40]))
    small.write_text("\n".join(lines[start:start + 40]) + "\n", encoding="utf-8")
    with gzip.open(brown_stream_path("train"), "rt", encoding="utf-8") as f:
        text = [next(f) for _ in range(300)]
    corpus = root / "corpus.txt"
    corpus.write_text("".join(text), encoding="utf-8")
    return {"vectors": vectors, "small": small, "corpus": corpus}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return _tiny_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def models(tmp_path_factory, inputs) -> dict[str, Path]:
    """Tiny tagger, scorer and LM trained in ONE subprocess that fills a private numba cache."""
    root, paths = tmp_path_factory.mktemp("cross"), inputs
    # The whole dev split is large enough for the tagger's evaluation to take the first-layer lookup path, so
    # the plain forward kernels are first compiled by an inference process, over parallel kernels that
    # training compiled: the order in which the cache first crashed.
    train, dev = str(wikigold_path("dev")), str(wikigold_path("dev"))
    common = ["--embeddings", str(paths["vectors"]), "--epochs", "1", "--quiet"]
    runs = {"tagger": root / "tagger", "scorer": root / "scorer", "lm": root / "lm"}
    commands = [
        ["ner", "train", "--train", train, "--dev", dev, "--out", str(runs["tagger"]), *common],
        ["score", "train", "--train", train, "--dev", str(paths["small"]), "--label", "LOC",
         "--out", str(runs["scorer"]), "--hidden", "16", *common],
        ["lm", "train", "--corpus", str(paths["corpus"]), "--context", "3", "--embed-dim", "8", "--hidden", "16",
         "--epochs", "1", "--out", str(runs["lm"])],
    ]
    result = _run([sys.executable, "-c", TRAIN_ALL, *("\t".join(c) for c in commands)],
                  _env(root / "numba-cache", root, None))
    assert result.returncode == 0, result.stderr[-3000:]
    return {**runs, **paths, "root": root, "cache": root / "numba-cache"}


def _tagger_commands(tagger: str, small: Path, work: Path) -> dict[str, tuple[list[str], str | None]]:
    text_file = work / "sentences.txt"
    text_file.write_text(SENTENCE, encoding="utf-8")
    return {
        "ner tag text stdin": ([WINNER, "ner", "tag", tagger, "-"], SENTENCE),
        "ner tag json file": ([WINNER, "ner", "tag", tagger, str(text_file), "--format", "json"], None),
        "ner evaluate": ([WINNER, "ner", "evaluate", tagger, "--data", str(small), "--json"], None),
    }


def _inference_commands(m: dict[str, Path]) -> dict[str, tuple[list[str], str | None]]:
    tagger, scorer, lm = str(m["tagger"]), str(m["scorer"]), str(m["lm"])
    return {
        **_tagger_commands(tagger, m["small"], m["root"]),
        "score windows": ([WINNER, "score", "windows", scorer, "Not all museums in Paris are amazing"], None),
        "score evaluate": ([WINNER, "score", "evaluate", scorer, "--data", str(m["small"]), "--json"], None),
        "lm generate": ([WINNER, "lm", "generate", lm, "--prompt", "the jury said", "-n", "12", "--seed", "1"], None),
        "lm perplexity": ([WINNER, "lm", "perplexity", lm, "--json"], None),
        "python classes": ([sys.executable, "-c", PYTHON_CLASSES, tagger, scorer, lm], None),
    }


def _assert_twice_same(name: str, args: list[str], stdin: str | None, env: dict[str, str],
                       expected: dict[str, str]) -> None:
    for attempt in (1, 2):
        result = _run(args, env, stdin)
        assert result.returncode == 0, (
            f"{name} (WINNER_THREADS={env.get('WINNER_THREADS')}, run {attempt}) exited {result.returncode}:\n"
            f"{result.stderr[-3000:]}")
        assert result.stdout.strip(), f"{name} printed nothing"
        first = expected.setdefault(name, result.stdout)
        assert result.stdout == first, f"{name}: output differs between processes or thread settings"


@pytest.fixture(scope="module")
def reference() -> dict[str, str]:
    """Each command's output, shared by every thread setting and cache order: they must all agree."""
    return {}


@pytest.mark.parametrize("threads", [None, "1", "2"], ids=["threads-unset", "threads-1", "threads-2"])
def test_inference_from_a_cache_filled_by_training(models, reference, threads):
    env = _env(models["cache"], models["root"], threads)
    for name, (args, stdin) in _inference_commands(models).items():
        _assert_twice_same(name, args, stdin, env, reference)


def test_inference_from_a_cache_filled_by_inference(models, reference, tmp_path):
    """The other order: on an empty cache a `tag` process compiles first, then every command runs twice over
    what it left. Outputs as from the training-filled cache."""
    commands = _inference_commands(models)
    if not reference:  # run alone: the outputs from the training-filled cache first
        for name, (args, stdin) in commands.items():
            _assert_twice_same(name, args, stdin, _env(models["cache"], models["root"], None), reference)
    env = _env(tmp_path / "numba-cache", models["root"], None)
    fresh: dict[str, str] = {}
    for name, (args, stdin) in commands.items():
        _assert_twice_same(name, args, stdin, env, fresh)
        assert fresh[name] == reference[name], f"{name}: output differs with a cache filled by inference"


KERNEL_ORDER = """
import sys
import numpy as np
from winner.core import blas, runtime
runtime.init()  # what every model does before its first kernel call
if sys.argv[1] == "parallel":  # a one-row product big enough for the threaded kernel
    W, a = np.ones((2000, 1100), np.float32), np.ones(2000, np.float32)
    out = np.zeros(1100, np.float32)
    blas.rows_times_vector(W, a, out)
else:  # a small one: the threaded kernel is only linked in, never run
    W, a = np.ones((20, 11), np.float32), np.ones((1, 20), np.float32)
    out = np.zeros(11, np.float32)
    blas.vector_times_matrix(False, False, 1.0, a, W, 0.0, out)
print(float(out.sum()))
"""


LOOKUP = """
import hashlib
import numpy as np
from winner.core.mlp import MLPConfig, WindowMLP
model = WindowMLP(MLPConfig(n_positions=5, vocab_size=50, embed_dim=4, n_features=3, feature_dim=2, n_out=7,
                            hidden=(16,)), seed=0)
rng = np.random.default_rng(1)
ids = rng.integers(0, 50, (4096, 5)).astype(np.int32)
feats = rng.integers(0, 3, (4096, 5)).astype(np.int32)
whole = model.predict_log_proba(ids, feats, method="lookup")  # the vocabulary's table
model._vocab_table = None
few = model.predict_log_proba(ids[:3], feats[:3], method="lookup")  # a table of just these windows' words
print(hashlib.md5(whole.tobytes()).hexdigest(), np.array_equal(few, whole[:3]))
"""


TRAINING_BITS = """
import hashlib, sys
import numpy as np
from winner.core import runtime
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer
runtime.init()
if sys.argv[1] == "callees first":  # a kernel's callees loaded from the cache before the kernel itself
    from winner.core.layers import softmax_xent
    from winner.core.fastmath import fixed_sum
    Z = np.zeros((2, 3000), np.float32)
    softmax_xent(Z, np.zeros(2, np.int64), 0.5, np.zeros_like(Z), np.zeros(32, np.float32))
    fixed_sum(Z[0], np.zeros(32, np.float32))
lm = MLPConfig(n_positions=4, vocab_size=3000, embed_dim=16, n_out=3000, hidden=(32,), direct=True)
ner = MLPConfig(n_positions=5, vocab_size=500, embed_dim=20, n_out=9, hidden=(40,), n_features=5, feature_dim=4,
                dropout_input=0.1, dropout_hidden=0.2)
for cfg, opt, batch in [(lm, Optimizer("sgd", lr=0.1), 1), (lm, Optimizer("adam", lr=1e-3), 128),
                        (ner, Optimizer("sgd", lr=0.05), 1), (ner, Optimizer("sgd", lr=0.05), 64)]:
    rng = np.random.default_rng(3)
    m = WindowMLP(cfg, seed=3)
    ids = rng.integers(0, cfg.vocab_size, (512, cfg.n_positions)).astype(np.int64)
    feats = rng.integers(0, cfg.n_features, (512, cfg.n_positions)).astype(np.int64)
    targets = rng.integers(0, cfg.n_out, 512).astype(np.int64)
    loss = opt.train_batches(m, ids, feats, targets, rng.permutation(512).astype(np.int64), 0, 512, batch, 3)
    print(repr(loss), hashlib.md5(m.theta.tobytes() + m.E.tobytes()).hexdigest())
"""


@pytest.fixture(scope="module")
def readme_run(inputs, tmp_path_factory) -> dict[str, Path]:
    """`winner ner train` as the README runs it, in one process over an empty private cache (for TestOwnCaches
    only, so it runs on that class's worker)."""
    root = tmp_path_factory.mktemp("readme")
    run = root / "tagger"
    train = _run([WINNER, "ner", "train", "--train", str(wikigold_path("dev")), "--dev", str(wikigold_path("dev")),
                  "--embeddings", str(inputs["vectors"]), "--epochs", "1", "--quiet", "--out", str(run)],
                 _env(root / "numba-cache", root, None))
    assert train.returncode == 0, train.stderr[-3000:]
    return {"run": run, "root": root, "cache": root / "numba-cache"}


class TestOwnCaches:
    """Kernels and commands over numba caches of their own, empty at first. A class, so that pytest-xdist's
    loadscope runs them beside the module's shared-model tests, on the other worker: each compiles from empty."""

    def test_readme_path_train_then_tag_twice(self, readme_run, inputs):
        """The README's path on its own cache: `ner train` in one process (readme_run), then `ner tag` in two
        more. Training compiles the parallel kernels; the first `tag` compiles the plain forward pass over them; the
        second loads that from the cache (the run that crashed)."""
        run, work = readme_run["run"], readme_run["root"]
        env = _env(readme_run["cache"], work, None)
        outputs: dict[str, str] = {}
        commands = _tagger_commands(str(run), inputs["small"], work)
        for name in ("ner tag text stdin", "ner evaluate"):
            args, stdin = commands[name]
            _assert_twice_same(name, args, stdin, env, outputs)

    def test_training_gives_the_same_bits_whatever_numba_cache_held(self, readme_run, tmp_path):
        """Same seed, same bits: in the process that compiled the training kernels, in one that loaded them from
        the cache, in one that loaded some of their callees first (a reassociating callee once summed in another
        order in each of these, see winner.core.fastmath.FAST), and over a cache the CLI's training filled."""
        env = _env(tmp_path / "numba-cache", tmp_path, "1")
        runs = [_run([sys.executable, "-c", TRAINING_BITS, order], env)
                for order in ("compiles", "loads", "callees first")]
        # A cache the CLI's training filled: there the shared callees were first compiled by other callers (the
        # character-window step), and a callee that leaves fastmath or error_model unset takes its first caller's
        # (numba's flag inheritance), which the cache then hands to every later caller.
        cli_cache = tmp_path / "cli-numba-cache"
        shutil.copytree(readme_run["cache"], cli_cache)
        runs.append(_run([sys.executable, "-c", TRAINING_BITS, "compiles"], _env(cli_cache, tmp_path, "1")))
        for r in runs:
            assert r.returncode == 0, r.stderr[-2000:]
        assert runs[0].stdout.count("\n") == 4
        assert runs[1].stdout == runs[0].stdout, "loaded from the cache: other bits than when compiled"
        assert runs[2].stdout == runs[0].stdout, "callees loaded first: other bits than when compiled"
        assert runs[3].stdout == runs[0].stdout, "over the CLI's cache: other bits than when compiled"

    def test_kernel_compiled_over_a_cached_parallel_kernel(self, tmp_path):
        """The smallest form of the crash: process 1 caches the parallel kernel, process 2 compiles a caller
        over it (loaded from the cache), process 3 loads that caller."""
        env = _env(tmp_path / "numba-cache", tmp_path, None)
        results = [_run([sys.executable, "-c", KERNEL_ORDER, step], env) for step in ("parallel", "caller", "caller")]
        for step, r in enumerate(results, 1):
            assert r.returncode == 0, f"process {step} exited {r.returncode}: {r.stderr[-2000:]}"
        assert [r.stdout for r in results] == ["2200000.0\n", "220.0\n", "220.0\n"]

    def test_parallel_lookup_kernel_loads_from_the_cache_in_fresh_processes(self, tmp_path):
        """lookup_logits and the tables' stable_rows_times are parallel and cached: compiled by one process, then
        loaded by two more (no explicit init in the script: the model runs it), each with the same bits, and a table
        of a few words gives those words the bits of the whole vocabulary's table."""
        env = _env(tmp_path / "numba-cache", tmp_path, None)
        results = [_run([sys.executable, "-c", LOOKUP], env) for _ in range(3)]
        for step, r in enumerate(results, 1):
            assert r.returncode == 0, f"process {step} exited {r.returncode}: {r.stderr[-2000:]}"
        assert len({r.stdout for r in results}) == 1 and results[0].stdout.strip().endswith("True")
