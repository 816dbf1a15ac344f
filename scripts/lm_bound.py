#!/usr/bin/env python
"""How fast can a batch-64 LM training step be on this machine? The arithmetic behind issue 5's LM target.

A step of the bench's language model (|V| 16,493; context 4 x embed 60; hidden 100; direct connections) spends
nearly all its time in three products with the (341 x 16,493) output block: the logits U @ W, the gradient
into the layer below dZ @ W.T, and the weight update W -= lr U.T @ dZ. This times each of them with winner's
gemm (numpy's OpenBLAS) and with PyTorch's (MKL), in both weight layouts (winner's (341, |V|) and the
(|V|, 341) of nn.Linear), winner's softmax, and both whole training steps. It then prints the fastest step
that any mix of the two libraries would allow (the fastest library per product, plus winner's softmax and the
rest of its step) and the ratio to PyTorch that this step would give. Every figure is a median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="threads for both libraries (default 1)")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per figure (median reported)")
    parser.add_argument("--target", type=float, default=1.5, help="the ratio to PyTorch asked for (default 1.5)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        parser.error("PyTorch is not installed: pip install torch==2.13.0")
    from numba import njit

    from winner.core import bench, blas, layers
    from winner.core.optim import Optimizer

    bench.set_all_threads(args.threads, torch)
    B, lm = 64, bench.LM
    V, width = lm["vocab"], lm["hidden"] + 1 + lm["positions"] * lm["embed"]
    rng = np.random.default_rng(0)

    # whole steps, on the bench's data: 12 batches of 64
    n_tok = 12 * B
    stream = bench.zipf_ids(rng, V, n_tok + lm["positions"])
    ids = bench.windows_of(stream, lm["positions"] + 1)[:n_tok]
    ctx, targets = np.ascontiguousarray(ids[:, :-1]), ids[:, -1].astype(np.int64)
    model, opt = bench.lm_model(), Optimizer("sgd", lr=bench.LM_LR)
    feats, order = np.zeros_like(ctx), np.arange(n_tok, dtype=np.int64)
    winner_step = median_ms(lambda: opt.train_batches(model, ctx, feats, targets, order, 0, n_tok, B, 0),
                            args.repeats) / 12
    torch.manual_seed(0)
    net = bench.torch_window_mlp(torch, V, lm["embed"], lm["positions"], lm["hidden"], V, direct=True)
    torch_rate, _ = bench.torch_train_rate(torch, net, ctx, targets, B, n_tok, bench.LM_LR, max(3, args.repeats // 3))
    torch_step = 1e3 * B / torch_rate

    # the three products, in both layouts
    W = (0.01 * rng.standard_normal((width, V))).astype(np.float32)
    Wt = np.ascontiguousarray(W.T)
    U = rng.standard_normal((B, width)).astype(np.float32)
    dZ = (1e-3 * rng.standard_normal((B, V))).astype(np.float32)
    Z, dU = np.empty((B, V), np.float32), np.empty((B, width), np.float32)

    @njit
    def winner_gemm(ta, tb, alpha, A, Bm, beta, C):
        blas.gemm(ta, tb, alpha, A, Bm, beta, C)

    winner_times = {
        "winner layout": [median_ms(lambda: winner_gemm(False, False, 1.0, U, W, 0.0, Z), args.repeats),
                          median_ms(lambda: winner_gemm(False, True, 1.0, dZ, W, 0.0, dU), args.repeats),
                          median_ms(lambda: winner_gemm(True, False, -1e-9, U, dZ, 1.0, W), args.repeats)],
        "nn.Linear layout": [median_ms(lambda: winner_gemm(False, True, 1.0, U, Wt, 0.0, Z), args.repeats),
                             median_ms(lambda: winner_gemm(False, False, 1.0, dZ, Wt, 0.0, dU), args.repeats),
                             median_ms(lambda: winner_gemm(True, False, -1e-9, dZ, U, 1.0, Wt), args.repeats)],
    }
    tW, tWt, tU, tdZ = (torch.from_numpy(a) for a in (W, Wt, U, dZ))
    torch_times = {
        "winner layout": [median_ms(lambda: torch.mm(tU, tW), args.repeats),
                          median_ms(lambda: torch.mm(tdZ, tW.T), args.repeats),
                          median_ms(lambda: tW.addmm_(tU.T, tdZ, alpha=-1e-9), args.repeats)],
        "nn.Linear layout": [median_ms(lambda: torch.mm(tU, tWt.T), args.repeats),
                             median_ms(lambda: torch.mm(tdZ, tWt), args.repeats),
                             median_ms(lambda: tWt.addmm_(tdZ.T, tU, alpha=-1e-9), args.repeats)],
    }
    Zs = (3 * rng.standard_normal((B, V))).astype(np.float32)
    softmax = median_ms(lambda: layers.softmax_xent(Zs, targets[:B], 1.0 / B, dZ), args.repeats)
    rest = winner_step - sum(winner_times["winner layout"]) - softmax

    flops = 2 * B * width * V
    print(f"batch {B}, output block {width} x {V:,}, {args.threads} thread(s); ms (GFLOP/s) per product:")
    print(f"{'':18} {'library':8} {'U @ W':>14} {'dZ @ W.T':>14} {'W -= U.T @ dZ':>14}")
    for layout in winner_times:
        for name, times in (("winner", winner_times[layout]), ("PyTorch", torch_times[layout])):
            cells = " ".join(f"{t:7.2f} ({flops / t / 1e6:4.0f})" for t in times)
            print(f"{layout:18} {name:8} {cells}")
    best = {layout: sum(min(a, b) for a, b in zip(winner_times[layout], torch_times[layout], strict=True))
            for layout in winner_times}
    layout = min(best, key=best.get)
    bound = best[layout] + softmax + max(rest, 0.0)
    print(f"winner softmax_xent (64 x {V:,}): {softmax:.2f} ms; the rest of winner's step: {rest:.2f} ms")
    print(f"training step: winner {winner_step:.2f} ms, PyTorch {torch_step:.2f} ms: "
          f"ratio {torch_step / winner_step:.2f}x")
    print(f"fastest step from the fastest library per product ({layout}): {best[layout]:.2f} + {softmax:.2f} + "
          f"{max(rest, 0.0):.2f} = {bound:.2f} ms: at most {torch_step / bound:.2f}x PyTorch")
    print(f"{args.target}x PyTorch needs a step of {torch_step / args.target:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
