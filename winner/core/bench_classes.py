"""Benchmark rows of the class-factored LM output (core/classes.py) against a PyTorch reference of the same model.

The model is `winner lm train --output classes` at its default sizes (|V| 16,493, context 16, embed 100, hidden
200 tanh, no direct connections, frequency-binned classes), trained with lazy Adam on Zipf-distributed ids. The
PyTorch reference computes the same factored loss the usual way (nn.AdaptiveLogSoftmaxWithLoss's way: one
product per class present in the batch) with the word output rows in sparse embeddings, so SparseAdam updates
only the touched rows, as winner's lazy Adam does, and Adam the dense rest. The factored-to-full ratio compares
winner's own full-softmax epoch with the factored one at the default batch (128), one thread.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from winner.core import classes
from winner.core.bench_common import Report, Row, median_rate, set_all_threads, windows_of, zipf_ids
from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer

DEFAULT = dict(vocab=16_493, embed=100, positions=16, hidden=200, classes=512, batch=128)  # `winner lm train`'s
ADAM_LR = 1e-3


def zipf_counts(vocab: int) -> np.ndarray:
    """Expected counts under the Zipf-Mandelbrot law the bench draws its ids from (bench.zipf_ids)."""
    return 1e6 / (np.arange(vocab) + 2.7)


def class_model(layout: classes.ClassLayout, output: str) -> WindowMLP:
    """The default LM network with the factored output (output="classes"), the full softmax ("full"), or a
    softmax over two words ("two": what the input and hidden layers cost, which no output layer removes)."""
    d = DEFAULT
    n_out = {"classes": int(layout.starts[-1]), "full": d["vocab"], "two": 2}[output]
    cfg = MLPConfig(n_positions=d["positions"], vocab_size=d["vocab"], embed_dim=d["embed"], n_out=n_out,
                    hidden=(d["hidden"],), loss="none" if output == "classes" else "softmax",
                    dropout_input=0.25, dropout_hidden=0.25)
    return WindowMLP(cfg, seed=0)


def winner_rate(layout: classes.ClassLayout, output: str, ctx: np.ndarray, targets: np.ndarray, batch: int, n: int,
                repeats: int) -> tuple[float, list[float]]:
    """winner's training tokens/s with (lazy) Adam, with the output of class_model."""
    model = class_model(layout, output)
    opt = Optimizer("adam", lr=ADAM_LR, eps=1e-5, output_classes=layout if output == "classes" else None)
    feats = np.zeros_like(ctx)
    order = np.arange(len(targets), dtype=np.int64)
    opt.train_batches(model, ctx, feats, targets, order, 0, 2 * batch, batch, 0)  # compile or load
    return median_rate(n, partial(opt.train_batches, model, ctx, feats, targets, order, 0, n, batch, 0), repeats)


# ---------------------------------------------------------------- PyTorch side (imported lazily)


def torch_class_lm(torch, layout: classes.ClassLayout):
    """The same factored LM in PyTorch: sparse input embeddings, tanh hidden layer, a class layer, and each
    class's word scores from the rows of sparse output embeddings (word order as in winner's layout)."""
    nn = torch.nn
    d = DEFAULT
    C = int(layout.starts.shape[0] - 1)
    starts = layout.starts - C
    word_pos = torch.from_numpy(layout.word_col - C)
    word_class = torch.from_numpy(layout.word_class.astype(np.int64))

    class ClassLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(d["vocab"], d["embed"], sparse=True)
            self.hidden = nn.Linear(d["positions"] * d["embed"], d["hidden"])
            self.classes = nn.Linear(d["hidden"], C)
            self.words = nn.Embedding(d["vocab"], d["hidden"], sparse=True)  # row k = the k-th word column
            self.word_bias = nn.Embedding(d["vocab"], 1, sparse=True)
            self.drop = nn.Dropout(0.25)

        def forward(self, ids, y):
            """Mean -log P(y | ids) = -log P(class) - log P(word | class)."""
            x = self.drop(self.emb(ids).reshape(ids.shape[0], -1))
            a = self.drop(torch.tanh(self.hidden(x)))
            cy = word_class[y]
            nll = -torch.log_softmax(self.classes(a), dim=1).gather(1, cy[:, None])[:, 0]
            for c in torch.unique(cy).tolist():
                rows = (cy == c).nonzero()[:, 0]
                cols = torch.arange(int(starts[c]), int(starts[c + 1]))
                z = a[rows] @ self.words(cols).T + self.word_bias(cols)[:, 0]
                pos = (word_pos[y[rows]] - int(starts[c]))[:, None]
                nll = nll.index_add(0, rows, -torch.log_softmax(z, dim=1).gather(1, pos)[:, 0])
            return nll.mean()

    return ClassLM()


def torch_rate(torch, net, ctx: np.ndarray, targets: np.ndarray, batch: int, n: int, repeats: int,
               ) -> tuple[float, list[float]]:
    """PyTorch's training tokens/s: SparseAdam on the sparse embeddings, Adam on the rest."""
    sparse = [net.emb.weight, net.words.weight, net.word_bias.weight]
    dense = [p for p in net.parameters() if all(p is not s for s in sparse)]
    opts = [torch.optim.SparseAdam(sparse, lr=ADAM_LR, eps=1e-5), torch.optim.Adam(dense, lr=ADAM_LR, eps=1e-5)]
    ids_t = torch.from_numpy(ctx.astype(np.int64))
    y_t = torch.from_numpy(targets.astype(np.int64))

    def run(count: int) -> None:
        for s in range(0, count, batch):
            for o in opts:
                o.zero_grad(set_to_none=True)
            net(ids_t[s : s + batch], y_t[s : s + batch]).backward()
            for o in opts:
                o.step()

    run(2 * batch)
    return median_rate(n, lambda: run(n), repeats)


# ---------------------------------------------------------------- the rows


def class_workload(report: Report, rng: np.random.Generator, threads: tuple[int, ...], repeats: int, quick: bool,
                   torch, progress: Callable[[str], None]) -> None:
    """Factored LM training tokens/s at batch 64 and 256 (each thread count, with PyTorch when given), and the
    full-softmax to factored epoch-time ratio at the default batch, one thread."""
    d = DEFAULT
    n_tok = 8192 if quick else 32768
    stream = zipf_ids(rng, d["vocab"], n_tok + d["positions"])
    win = windows_of(stream, d["positions"] + 1)[:n_tok]
    ctx, targets = np.ascontiguousarray(win[:, :-1]), win[:, -1].astype(np.int64)
    layout = classes.layout_of(classes.frequency_classes(zipf_counts(d["vocab"]), d["classes"]))
    for t in threads:
        set_all_threads(t, torch)
        for batch in (64, 256):
            progress(f"LM factored output training, batch {batch}, {t} thread(s)")
            rate, runs = winner_rate(layout, "classes", ctx, targets, batch, n_tok, repeats)
            row = Row("lm classes train", batch, t, "tokens/s", rate, runs=runs)
            if torch is not None:
                torch.manual_seed(0)
                row.torch, row.torch_runs = torch_rate(torch, torch_class_lm(torch, layout), ctx, targets, batch,
                                                       n_tok, repeats)
            report.rows.append(row)
    progress("LM full softmax against the factored output, batch 128, 1 thread")
    set_all_threads(1)
    n_full = min(n_tok, 2048 if quick else 4096)
    full, full_runs = winner_rate(layout, "full", ctx, targets, d["batch"], n_full, repeats)
    factored, fac_runs = winner_rate(layout, "classes", ctx, targets, d["batch"], n_tok, repeats)
    shared, shared_runs = winner_rate(layout, "two", ctx, targets % 2, d["batch"], n_tok, repeats)
    report.rows.append(Row("lm full softmax train", d["batch"], 1, "tokens/s", full, runs=full_runs))
    report.rows.append(Row("lm classes train", d["batch"], 1, "tokens/s", factored, runs=fac_runs))
    report.rows.append(Row("lm 2-word output train", d["batch"], 1, "tokens/s", shared, runs=shared_runs))
    report.checks["lm epoch time, full softmax / factored output (batch 128, 1 thread)"] = f"{factored / full:.1f}x"
    report.checks["lm epoch time, full softmax / 2-word output: the most any output layer can gain"] = (
        f"{shared / full:.1f}x")
