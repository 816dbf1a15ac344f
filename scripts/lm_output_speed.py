"""Training speed of the LM's full softmax against its class-factored output, at `winner lm train`'s default
sizes on Brown, in one process with the two interleaved round by round (so both see the same machine load).

    python scripts/lm_output_speed.py [--windows 20000] [--rounds 3] [--batch 128]

Prints tokens/s of each and the ratio of their medians (= the ratio of epoch times).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from winner.core.optim import Optimizer
from winner.heads.lm import LanguageModel, load_corpus, split_windows
from winner.heads.settings import LMSettings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    s = LMSettings()
    streams, vocab = load_corpus("brown")
    ids = {k: vocab.ids(v) for k, v in streams.items()}
    variants = {}
    for name, n_classes in (("full", 0), ("classes", LMSettings(output="classes").n_classes(len(vocab)))):
        lm = LanguageModel.create(vocab, s.context, s.embed_dim, s.hidden_sizes(), s.direct, s.dropout,
                                  s.hidden_dropout, 0, ids["train"], n_classes=n_classes)
        opt = Optimizer("adam", lr=s.lr, eps=s.adam_eps,
                        output_classes=lm.output.layout if n_classes else None)
        variants[name] = (lm, opt)
    X, y = split_windows(ids, "train", s.context, len(vocab))
    order = np.random.default_rng(0).permutation(len(y)).astype(np.int64)
    feats = np.zeros_like(X)
    for lm, opt in variants.values():  # compile / load the kernels
        opt.train_batches(lm.model, X, feats, y, order, 0, 2 * args.batch, args.batch, 0)
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        span = slice(r * args.windows, (r + 1) * args.windows)
        for name, (lm, opt) in variants.items():
            t = time.perf_counter()
            opt.train_batches(lm.model, X, feats, y, order[span], 0, args.windows, args.batch, 0)
            rates[name].append(args.windows / (time.perf_counter() - t))
            print(f"round {r + 1} {name:8s} {rates[name][-1]:10,.0f} tokens/s", flush=True)
    med = {k: float(np.median(v)) for k, v in rates.items()}
    print(f"median tokens/s: full {med['full']:,.0f}, classes {med['classes']:,.0f} "
          f"({variants['classes'][0].output.n_classes} classes); epoch time ratio full/classes "
          f"{med['classes'] / med['full']:.1f}x")


if __name__ == "__main__":
    main()
