"""Benchmarks of the numba core against PyTorch on the CPU, same shapes, same batch, same threads, same run.

Workloads (synthetic ids drawn from a Zipf-like distribution, as words in text are):
- NER window MLP training (V 30,000, embed 100, window 5, hidden 300 tanh, 9 classes, plain SGD, backprop
  into the embeddings), windows/s per batch size and thread count;
- tagging: log-probabilities of 200,000 token windows (winner: the first-layer lookup path), and the same with
  character windows on and 2% of the tokens words the vocabulary lacks (bench_chars.py, winner only), and with
  character windows and document codes (bench_context.py, winner only);
- LM training (|V| 16,493, context 4, embed 60, hidden 100, direct connections, full softmax), tokens/s,
  and generation at batch 1 (one forward + one sample per token);
- the class-factored LM output (bench_classes.py): training tokens/s against a PyTorch reference of the same
  factored model, and the full-softmax to factored epoch-time ratio;
- the GEMM ceiling: numpy float32 GFLOP/s, and each winner figure as a fraction of it.
Every figure is the median of `repeats` timed runs after a warm-up run; the first call's time (JIT compile
or numba cache load) is reported on its own. PyTorch is imported only here, and only when asked for.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numba
import numpy as np
import threadpoolctl

from winner.core import runtime
from winner.core.atomic import save_figure
from winner.core.bench_chars import char_tag_workload
from winner.core.bench_classes import class_workload
from winner.core.bench_common import Report, Row, median_rate, set_all_threads, windows_of, zipf_ids
from winner.core.bench_context import document_tag_workload
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer

NER = dict(vocab=30_000, embed=100, positions=5, hidden=300, classes=9)
LM = dict(vocab=16_493, embed=60, positions=4, hidden=100)
NER_FLOPS = 2 * 3 * (500 * 300 + 300 * 9)  # per training window (forward + two backward products)
TAG_FLOPS = NER_FLOPS / 3  # per tagged token: the forward pass
LM_FORWARD = 2 * (240 * 100 + 100 * LM["vocab"] + 240 * LM["vocab"])
LM_FLOPS = 3 * LM_FORWARD
NER_LR, LM_LR = 0.01, 0.05


def gemm_ceiling(threads: int, repeats: int, size: int = 1024) -> float:
    """numpy float32 GEMM GFLOP/s for (size x size) @ (size x size) with `threads` BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    b = rng.standard_normal((size, size)).astype(np.float32)
    c = np.empty((size, size), np.float32)
    set_all_threads(threads)
    # winner keeps the BLAS on one thread and shares a product's parts among its own threads, so the ceiling
    # of `threads` cores is numpy's BLAS given that many threads for this measurement only.
    with threadpoolctl.threadpool_limits(threads, user_api="blas"):
        rate, _ = median_rate(1, lambda: np.dot(a, b, out=c), max(repeats, 5))
    return rate * 2 * size**3 / 1e9


# ---------------------------------------------------------------- winner side


def winner_ner(batch: int, n: int, ids: np.ndarray, targets: np.ndarray, repeats: int,
               first: dict[str, float]) -> tuple[float, list[float]]:
    cfg = MLPConfig(n_positions=NER["positions"], vocab_size=NER["vocab"], embed_dim=NER["embed"],
                    n_out=NER["classes"], hidden=(NER["hidden"],))
    model = WindowMLP(cfg, seed=0)
    opt = Optimizer("sgd", lr=NER_LR)
    feats = np.zeros_like(ids)
    order = np.arange(len(targets), dtype=np.int64)
    key = "ner training (batch 1)" if batch == 1 else "ner training (minibatch)"
    if key not in first:
        t0 = time.perf_counter()
        opt.train_batches(model, ids, feats, targets, order, 0, 2 * batch, batch, 0)
        first[key] = time.perf_counter() - t0
    return median_rate(n, lambda: opt.train_batches(model, ids, feats, targets, order, 0, n, batch, 0), repeats)


def ner_model(seed: int = 0):
    cfg = MLPConfig(n_positions=NER["positions"], vocab_size=NER["vocab"], embed_dim=NER["embed"],
                    n_out=NER["classes"], hidden=(NER["hidden"],))
    return WindowMLP(cfg, seed=seed)


def lm_model():
    cfg = MLPConfig(n_positions=LM["positions"], vocab_size=LM["vocab"], embed_dim=LM["embed"], n_out=LM["vocab"],
                    hidden=(LM["hidden"],), direct=True)
    return WindowMLP(cfg, seed=0)


# ---------------------------------------------------------------- PyTorch side (imported lazily)


def torch_window_mlp(torch, vocab: int, embed: int, positions: int, hidden: int, n_out: int, direct: bool):
    """The same window MLP in PyTorch: sparse embedding gradients, tanh hidden layer, optional direct D."""
    nn = torch.nn

    class WindowNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(vocab, embed, sparse=True)
            self.hidden = nn.Linear(positions * embed, hidden)
            self.out = nn.Linear(hidden, n_out)
            self.direct = nn.Linear(positions * embed, n_out, bias=False) if direct else None

        def forward(self, ids):
            x = self.emb(ids).reshape(ids.shape[0], -1)
            z = self.out(torch.tanh(self.hidden(x)))
            if self.direct is not None:
                z = z + self.direct(x)
            return z

    return WindowNet()


def torch_train_rate(torch, net, ids: np.ndarray, targets: np.ndarray, batch: int, n: int, lr: float,
                     repeats: int) -> tuple[float, list[float]]:
    ids_t = torch.from_numpy(ids.astype(np.int64))
    y_t = torch.from_numpy(targets.astype(np.int64))
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    lossf = torch.nn.functional.cross_entropy

    def run(count: int) -> None:
        for s in range(0, count, batch):
            opt.zero_grad(set_to_none=True)
            loss = lossf(net(ids_t[s : s + batch]), y_t[s : s + batch])
            loss.backward()
            opt.step()

    run(2 * batch)
    return median_rate(n, lambda: run(n), repeats)


# ---------------------------------------------------------------- the suite


WORKLOADS = ("gemm", "ner", "tag", "lm", "lm-classes")


def parse_list(text: str, what: str, choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """'a,b' -> ('a', 'b'); a ValueError naming `what` for an empty list or an item outside `choices`."""
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise ValueError(f"{what}: expected a comma-separated list, got {text!r}")
    unknown = [t for t in items if choices is not None and t not in choices]
    if unknown:
        raise ValueError(f"{what}: unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
    return items


def parse_threads(text: str) -> tuple[int, ...]:
    """'1,2' -> (1, 2); a ValueError for anything but whole numbers >= 1."""
    items = parse_list(text, "threads")
    if not all(t.isdigit() and int(t) >= 1 for t in items):
        raise ValueError(f"threads: expected whole numbers >= 1 such as 1,2, got {text!r}")
    return tuple(int(t) for t in items)


def run(quick: bool = False, threads: tuple[int, ...] = (1, 2), repeats: int = 3, use_torch: bool = True,
        workloads: tuple[str, ...] = WORKLOADS, progress: Callable[[str], None] = lambda s: None) -> Report:
    """Measure every workload; returns the report (see the module docstring)."""
    if repeats < 3:
        raise ValueError("repeats must be at least 3 (every figure is a median)")
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        raise ValueError(f"unknown workload(s) {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    torch = None
    if use_torch:
        import torch  # noqa: PLC0415 — optional dependency, only for the comparison

    runtime.init()  # the BLAS the kernels use, so thread limits reach it

    report = Report()
    report.machine = {"cpu": platform.processor() or platform.machine(), "numpy": np.__version__,
                      "numba": numba.__version__, "torch": torch.__version__ if torch else None,
                      "cores": numba.config.NUMBA_NUM_THREADS, "quick": quick,
                      "load average at start": _loadavg()}
    rng = np.random.default_rng(0)
    first = report.first_call_seconds

    if "gemm" in workloads:
        for t in threads:
            progress(f"GEMM ceiling, {t} thread(s)")
            report.gemm_gflops[t] = gemm_ceiling(t, repeats)

    if "ner" in workloads:
        n_win = 16_384 if quick else 65_536
        ids = windows_of(zipf_ids(rng, NER["vocab"], n_win), NER["positions"])
        targets = rng.integers(0, NER["classes"], n_win)
        for t in threads:
            for batch in (1, 32, 128, 512):
                n = min(n_win, (4_000 if quick else 12_000) if batch == 1 else n_win)
                if batch == 1 and t > 1:
                    pass  # measured anyway: a second core must not make batch 1 slower
                progress(f"NER training, batch {batch}, {t} thread(s)")
                set_all_threads(t, torch)
                rate, runs = winner_ner(batch, n, ids, targets, repeats, first)
                row = Row("ner train", batch, t, "windows/s", rate, flops_per_unit=NER_FLOPS, runs=runs)
                if torch is not None:
                    torch.manual_seed(0)
                    net = torch_window_mlp(torch, NER["vocab"], NER["embed"], NER["positions"], NER["hidden"],
                                           NER["classes"], direct=False)
                    tn = min(n, 1_000 if quick else 3_000) if batch == 1 else n
                    row.torch, row.torch_runs = torch_train_rate(torch, net, ids, targets, batch, tn, NER_LR, repeats)
                report.rows.append(row)

    if "tag" in workloads:
        tag_workload(report, rng, threads, repeats, quick, torch, progress)
        char_tag_workload(report, rng, NER, threads, repeats, quick, progress)
        document_tag_workload(report, rng, NER, threads, repeats, quick, progress)

    if "lm" in workloads:
        lm_workload(report, rng, threads, repeats, quick, torch, progress)
    if "lm-classes" in workloads:
        class_workload(report, rng, threads, repeats, quick, torch, progress)
    set_all_threads(max(threads), torch)
    report.machine["load average at end"] = _loadavg()
    return report


def _loadavg() -> str:
    """The 1/5/15-minute load averages: other jobs sharing the cores make every figure noisier."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def tag_workload(report: Report, rng: np.random.Generator, threads: tuple[int, ...], repeats: int, quick: bool,
                 torch, progress: Callable[[str], None]) -> None:
    """Log-probabilities of 200,000 token windows: winner's lookup path vs PyTorch's forward in batches."""
    n_tok = 50_000 if quick else 200_000
    ids = windows_of(zipf_ids(rng, NER["vocab"], n_tok), NER["positions"])
    model = ner_model(seed=1)
    t0 = time.perf_counter()
    model.predict_log_proba(ids[:64], method="lookup")
    report.first_call_seconds["tagging (lookup path)"] = time.perf_counter() - t0
    ref = model.predict_log_proba(ids, method="gemm")
    t0 = time.perf_counter()
    fast = model.predict_log_proba(ids, method="lookup")  # builds the whole vocabulary's table, kept after
    report.first_call_seconds["tagging: first full call, building the (word, position) table"] = (
        time.perf_counter() - t0)
    report.checks["tagging: tokens whose tag differs, lookup vs straightforward"] = int(
        np.sum(ref.argmax(1) != fast.argmax(1)))
    report.checks["tagging: max |log p difference|, lookup vs straightforward"] = float(np.abs(ref - fast).max())
    for t in threads:
        progress(f"tagging {n_tok} tokens, {t} thread(s)")
        set_all_threads(t, torch)
        rate, runs = median_rate(n_tok, lambda: model.predict_log_proba(ids, method="lookup"), repeats)
        row = Row("tagging", 4096, t, "tokens/s", rate, flops_per_unit=TAG_FLOPS, runs=runs,
                  note="winner: first-layer lookup")
        gemm_rate, _ = median_rate(n_tok, lambda: model.predict_log_proba(ids, batch=4096, method="gemm"), repeats)
        if torch is not None:
            torch.manual_seed(0)
            net = torch_window_mlp(torch, NER["vocab"], NER["embed"], NER["positions"], NER["hidden"],
                                   NER["classes"], direct=False)
            ids_t = torch.from_numpy(ids.astype(np.int64))

            row.torch, row.torch_runs = median_rate(n_tok, partial(torch_tag, torch, net, ids_t), repeats)
        report.rows.append(row)
        report.rows.append(Row("tagging (straightforward)", 4096, t, "tokens/s", gemm_rate,
                               flops_per_unit=TAG_FLOPS, torch=row.torch, note="winner: GEMM path, for reference"))


def lm_workload(report: Report, rng: np.random.Generator, threads: tuple[int, ...], repeats: int, quick: bool,
                torch, progress: Callable[[str], None]) -> None:
    """LM training tokens/s at batch 1, 64, 256 and generation tokens/s at batch 1."""
    n_tok = 4096 if quick else 8192
    stream = zipf_ids(rng, LM["vocab"], n_tok + LM["positions"])
    ids = windows_of(stream, LM["positions"] + 1)[:n_tok]
    ctx, targets = np.ascontiguousarray(ids[:, :-1]), ids[:, -1].astype(np.int64)
    feats = np.zeros_like(ctx)
    order = np.arange(n_tok, dtype=np.int64)
    for t in threads:
        set_all_threads(t, torch)
        for batch in (1, 64, 256):
            n = (64 if quick else 200) if batch == 1 else min(n_tok, (4 if quick else 12) * batch)
            progress(f"LM training, batch {batch}, {t} thread(s)")
            model = lm_model()
            opt = Optimizer("sgd", lr=LM_LR)
            key = f"lm training (batch {'1' if batch == 1 else 'n'})"
            if key not in report.first_call_seconds:
                t0 = time.perf_counter()
                opt.train_batches(model, ctx, feats, targets, order, 0, batch, batch, 0)
                report.first_call_seconds[key] = time.perf_counter() - t0
            rate, runs = median_rate(n, partial(opt.train_batches, model, ctx, feats, targets, order, 0, n, batch, 0),
                                     repeats)
            row = Row("lm train", batch, t, "tokens/s", rate, flops_per_unit=LM_FLOPS, runs=runs)
            if torch is not None:
                torch.manual_seed(0)
                net = torch_window_mlp(torch, LM["vocab"], LM["embed"], LM["positions"], LM["hidden"], LM["vocab"],
                                       direct=True)
                row.torch, row.torch_runs = torch_train_rate(torch, net, ctx, targets, batch, n, LM_LR, repeats)
            report.rows.append(row)
        progress(f"LM generation, {t} thread(s)")
        n_gen = 50 if quick else 200
        model = lm_model()
        row = Row("lm generate", 1, t, "tokens/s", 0.0, flops_per_unit=LM_FORWARD)
        row.winner, row.runs = median_rate(n_gen, partial(winner_generate, model, ctx[0], n_gen), repeats)
        if torch is not None:
            torch.manual_seed(0)
            net = torch_window_mlp(torch, LM["vocab"], LM["embed"], LM["positions"], LM["hidden"], LM["vocab"],
                                   direct=True)
            row.torch, row.torch_runs = median_rate(n_gen, partial(torch_generate, torch, net, ctx[0], n_gen),
                                                    repeats)
        report.rows.append(row)


def torch_tag(torch, net, ids_t, batch: int = 4096) -> None:
    with torch.inference_mode():
        for s in range(0, ids_t.shape[0], batch):
            torch.log_softmax(net(ids_t[s : s + batch]), dim=1)


def winner_generate(model, context: np.ndarray, n: int) -> list[int]:
    """Sample n tokens one at a time (batch 1): forward the context, sample from softmax, shift."""
    rng = np.random.default_rng(0)
    ctx = context.astype(np.int32).reshape(1, -1).copy()
    out = []
    for _ in range(n):
        logp = model.predict_log_proba(ctx, batch=1)[0].astype(np.float64)
        p = np.exp(logp - logp.max())
        w = int(rng.choice(p.shape[0], p=p / p.sum()))
        out.append(w)
        ctx[0, :-1] = ctx[0, 1:]
        ctx[0, -1] = w
    return out


def torch_generate(torch, net, context: np.ndarray, n: int) -> list[int]:
    rng = np.random.default_rng(0)
    ctx = torch.from_numpy(context.astype(np.int64)).reshape(1, -1).clone()
    out = []
    with torch.inference_mode():
        for _ in range(n):
            logp = torch.log_softmax(net(ctx), dim=1)[0].double().numpy()
            p = np.exp(logp - logp.max())
            w = int(rng.choice(p.shape[0], p=p / p.sum()))
            out.append(w)
            ctx[0, :-1] = ctx[0, 1:].clone()
            ctx[0, -1] = w
    return out


# ---------------------------------------------------------------- output


def plot_report(report: Report, path: str | Path) -> None:
    """The table as a picture: winner / PyTorch per figure (when PyTorch ran) and winner's share of the GEMM
    ceiling, one bar per workload, batch and thread count, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = report.to_json()["rows"]
    labels = [f"{r['workload']}  b{r['batch']}  {r['threads']}t" for r in data]
    colours = ["tab:blue" if r["threads"] == 1 else "tab:orange" for r in data]
    # (title, values, the line to compare with, how a value is labelled, log scale)
    panels = [("share of the GEMM ceiling", [100 * (r["fraction_of_gemm_ceiling"] or 0.0) for r in data], 100,
               "{:.0f}%", False)]
    if any(r["ratio"] for r in data):
        panels.insert(0, ("winner / PyTorch (log scale)", [r["ratio"] or np.nan for r in data], 1.0, "{:.2f}x",
                          True))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) + 3, 0.32 * len(data) + 1.5), sharey=True,
                             squeeze=False)
    y = np.arange(len(data))
    for ax, (title, values, reference, label, log) in zip(axes[0], panels, strict=True):
        bars = ax.barh(y, values, color=colours)
        ax.bar_label(bars, labels=[label.format(v) if np.isfinite(v) else "" for v in values], fontsize=7,
                     padding=2)
        ax.axvline(reference, color="black", linewidth=0.8)
        if log:
            ax.set_xscale("log")
        ax.set(title=title)
        ax.margins(x=0.15)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, labels, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle("winner bench (blue: 1 thread, orange: 2 threads)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _fmt_rate(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def format_table(report: Report) -> str:
    """A plain-text table: one line per figure, winner / PyTorch ratio and share of the GEMM ceiling."""
    head = f"{'workload':<26} {'batch':>5} {'thr':>3} {'winner':>9} {'PyTorch':>9} {'ratio':>7} {'%GEMM':>6}  unit"
    lines = [head, "-" * len(head)]
    for r in report.rows:
        ceiling = report.gemm_gflops.get(r.threads)
        frac = (f"{100 * r.winner * r.flops_per_unit / 1e9 / ceiling:5.0f}%" if ceiling and r.flops_per_unit
                else "     —")
        ratio = f"{r.ratio:6.2f}x" if r.ratio else "      —"
        lines.append(f"{r.workload:<26} {r.batch:>5} {r.threads:>3} {_fmt_rate(r.winner):>9} "
                     f"{_fmt_rate(r.torch):>9} {ratio} {frac}  {r.unit}")
    if report.gemm_gflops:
        lines.append("")
        lines.append("GEMM ceiling (numpy float32 1024x1024): " + ", ".join(
            f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in report.gemm_gflops.items()))
    if report.first_call_seconds:
        lines.append("first call (JIT compile or numba cache load), excluded from the rates: " + ", ".join(
            f"{k} {v:.2f}s" for k, v in report.first_call_seconds.items()))
    for k, v in report.checks.items():
        lines.append(f"check: {k}: {v}")
    lines.append("machine: " + ", ".join(f"{k} {v}" for k, v in report.machine.items()))
    return "\n".join(lines)
