"""Training speed of the core, one line: a tagger-sized and an LM-sized MLP, plain SGD, best of 3 timed runs.

For comparing two checkouts in one session, alternating them:
    WINNER_THREADS=1 PYTHONPATH=CHECKOUT python scripts/train_speed.py NAME
"""

from __future__ import annotations

import sys
import time

import numpy as np

from winner.core.mlp import MLPConfig, WindowMLP
from winner.core.optim import Optimizer

NER = MLPConfig(n_positions=5, vocab_size=30000, embed_dim=100, n_out=9, hidden=(300,))
LM = MLPConfig(n_positions=4, vocab_size=16493, embed_dim=60, n_out=16493, hidden=(100,), direct=True)


def windows_per_second(cfg: MLPConfig, batch: int, n: int, rng: np.random.Generator) -> float:
    """Best of 3 runs of plain SGD over n random windows, after a warm-up."""
    model, opt = WindowMLP(cfg, seed=0), Optimizer("sgd", lr=0.01)
    ids = rng.integers(0, cfg.vocab_size, (n, cfg.n_positions)).astype(np.int32)
    feats, order = np.zeros_like(ids), np.arange(n, dtype=np.int64)
    targets = rng.integers(0, cfg.n_out, n).astype(np.int64)
    opt.train_batches(model, ids, feats, targets, order, 0, 2 * batch, batch, 0)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        opt.train_batches(model, ids, feats, targets, order, 0, n, batch, 0)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    rng = np.random.default_rng(0)
    runs = [("ner sgd b1", NER, 1, 20000), ("ner sgd b128", NER, 128, 40000), ("lm sgd b1", LM, 1, 1500),
            ("lm sgd b64", LM, 64, 4096)]
    name = sys.argv[1] if len(sys.argv) > 1 else "winner"
    print(name, *(f"{label} {windows_per_second(cfg, b, n, rng):.0f}" for label, cfg, b, n in runs), flush=True)


if __name__ == "__main__":
    main()
