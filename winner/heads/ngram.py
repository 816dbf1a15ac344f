"""Interpolated modified Kneser-Ney n-gram language model (Chen & Goodman 1998, "An empirical study of smoothing
techniques for language modeling", section 3 and eq. 17-19).

    p_k(w | h) = max(c'(h w) - D_k(c'(h w)), 0) / c'(h .) + gamma_k(h) p_{k-1}(w | h without its first word)
    gamma_k(h) = (D_k1 N1(h .) + D_k2 N2(h .) + D_k3+ N3+(h .)) / c'(h .),     p_0(w) = 1 / |V|

c' is the raw count at the highest order and the continuation count N1+(. g) (distinct words seen before g)
below it; the three discounts of each order come from that order's counts of counts n1..n4 (Y = n1 / (n1 + 2 n2),
D_r = r - (r + 1) Y n_{r+1} / n_r). A context never seen (or seen only where nothing may follow) falls back to the
order below, so every p_k sums to exactly 1 over the vocabulary.

Trained on the train split read as one stream, with the neural LM's vocabulary (`<unk>` a word like any other);
a split is scored as the continuation of the splits before it, exactly as heads/lm.py does. N-grams are int64 keys
(id of the (k-1)-gram context) * |V| + word, kept sorted so lookups are binary searches over whole streams.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from winner.core.console import console
from winner.core.loop import write_json
from winner.data.vocab import Vocab
from winner.errors import ModelFormatError, WinnerError
from winner.heads.lm import SPLITS, load_corpus
from winner.heads.model_io import load_model_dir, save_model_dir

KIND = "ngram"


class OrderTable:
    """The k-grams seen in train (sorted keys), their counts c', and per (k-1)-gram context its total c'(h .)
    and back-off weight gamma(h); discounts (D1, D2, D3+) of the order."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, totals: np.ndarray, gammas: np.ndarray,
                 discounts: np.ndarray):
        self.keys, self.counts, self.totals, self.gammas, self.discounts = keys, counts, totals, gammas, discounts

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Index of each key in the table, -1 for unseen keys (and for negative keys: an unseen context)."""
        i = np.searchsorted(self.keys, keys)
        i = np.minimum(i, len(self.keys) - 1)
        found = (keys >= 0) & (self.keys[i] == keys)
        return np.where(found, i, -1)


def modified_discounts(counts: np.ndarray) -> np.ndarray:
    """(D1, D2, D3+) from the counts of counts n1..n4 (Chen & Goodman 1998, eq. 26), each held in [0, r]."""
    n = [float(np.sum(counts == r)) for r in (1, 2, 3, 4)]
    if n[0] == 0 or n[1] == 0:
        return np.array([0.5, 1.0, 1.5])  # too few counts to estimate (tiny corpora): a plain middle value
    y = n[0] / (n[0] + 2 * n[1])
    d = [r - (r + 1) * y * (n[r] / n[r - 1] if n[r - 1] else 0.0) for r in (1, 2, 3)]
    return np.clip(np.array(d), 0.0, [1.0, 2.0, 3.0])


def gram_ids(stream: np.ndarray, tables: list[OrderTable], vocab_size: int) -> list[np.ndarray]:
    """ids[k][j] = the index in tables[k - 1] of the k-gram ending at position j of the stream (-1: unseen or
    starting before the stream); ids[0] is all zeros (the empty context)."""
    ids = [np.zeros(len(stream), np.int64)]
    for table in tables:
        prev = np.full(len(stream), -1, np.int64)
        prev[1:] = ids[-1][:-1]
        if len(ids) == 1:
            prev[:] = 0
        keys = np.where(prev >= 0, prev * vocab_size + stream, -1)
        ids.append(table.lookup(keys))
    return ids


def build_order(keys_at: np.ndarray, counts: np.ndarray, n_contexts: int, vocab_size: int) -> OrderTable:
    """The table of one order from its distinct keys (sorted) and their counts c'."""
    ctx = keys_at // vocab_size
    d = modified_discounts(counts)
    totals = np.bincount(ctx, weights=counts, minlength=n_contexts)
    by_r = [np.bincount(ctx, weights=(counts == r) if r < 3 else (counts >= 3), minlength=n_contexts)
            for r in (1, 2, 3)]
    mass = d[0] * by_r[0] + d[1] * by_r[1] + d[2] * by_r[2]
    gammas = np.divide(mass, totals, out=np.zeros(n_contexts), where=totals > 0)
    return OrderTable(keys_at, counts.astype(np.float64), totals, gammas, d)


def train_kn(stream: np.ndarray, order: int, vocab_size: int) -> list[OrderTable]:
    """Tables of orders 1..order from one stream of word ids (c' raw at the top order, continuation below)."""
    stream = np.asarray(stream, dtype=np.int64)
    T = len(stream)
    ids = [np.zeros(T, np.int64)]
    uniques: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for k in range(1, order + 1):  # distinct k-grams, their raw counts, each position's k-gram
        pos = np.arange(k - 1, T)
        prev = ids[-1][pos - 1] if k > 1 else np.zeros(len(pos), np.int64)
        keys, inverse, raw = np.unique(prev * vocab_size + stream[pos], return_inverse=True, return_counts=True)
        at = np.full(T, -1, np.int64)
        at[pos] = inverse
        ids.append(at)
        uniques.append((keys, raw, inverse))
    tables = []
    for k in range(1, order + 1):
        keys, raw, _ = uniques[k - 1]
        if k == order:
            counts = raw
        else:  # continuation counts: distinct (k+1)-grams whose last k words are this k-gram
            suffix = np.full(len(uniques[k][0]), -1, np.int64)
            pos = np.arange(k, T)
            suffix[ids[k + 1][pos]] = ids[k][pos]
            counts = np.bincount(suffix, minlength=len(keys))
        n_contexts = 1 if k == 1 else len(uniques[k - 2][0])
        tables.append(build_order(keys, counts, n_contexts, vocab_size))
    return tables


def stream_log_probs(tables: list[OrderTable], vocab_size: int, stream: np.ndarray, start: int) -> np.ndarray:
    """log p(w_j | the words before it) (float64) for positions start.. of the stream, interpolated from order 1
    (over the uniform distribution) up."""
    stream = np.asarray(stream, dtype=np.int64)
    ids = gram_ids(stream, tables, vocab_size)
    n = len(stream) - start
    p = np.full(n, 1.0 / vocab_size)
    for k, table in enumerate(tables, start=1):
        ctx = np.zeros(n, np.int64) if k == 1 else np.concatenate([[-1], ids[k - 1][:-1]])[start:]
        g = ids[k][start:]
        seen = ctx >= 0
        total = np.where(seen, table.totals[np.maximum(ctx, 0)], 0.0)
        seen &= total > 0
        c = np.where(g >= 0, table.counts[np.maximum(g, 0)], 0.0)
        d = np.where(c >= 3, table.discounts[2], np.where(c >= 2, table.discounts[1], table.discounts[0]))
        gamma = table.gammas[np.maximum(ctx, 0)]
        safe = np.where(seen, total, 1.0)
        p = np.where(seen, np.maximum(c - d, 0.0) / safe + gamma * p, p)
    return np.log(p)


class NGramModel:
    """An interpolated modified Kneser-Ney model of one order over a vocabulary."""

    def __init__(self, tables: list[OrderTable], vocab: Vocab, meta: dict | None = None):
        self.tables, self.vocab, self.meta = tables, vocab, meta or {}

    @property
    def order(self) -> int:
        return len(self.tables)

    @classmethod
    def train(cls, train_ids: np.ndarray, order: int, vocab: Vocab, meta: dict | None = None) -> NGramModel:
        if order < 1:
            raise WinnerError(f"--order must be at least 1, got {order}")
        return cls(train_kn(train_ids, order, len(vocab)), vocab, meta)

    def token_nll(self, ids: np.ndarray, history: np.ndarray | None = None) -> np.ndarray:
        """-log p of every token of `ids`, read after `history` (the stream before it)."""
        history = np.zeros(0, np.int64) if history is None else np.asarray(history, np.int64)
        stream = np.concatenate([history[-(self.order - 1):] if self.order > 1 else history[:0],
                                 np.asarray(ids, np.int64)])
        return -stream_log_probs(self.tables, len(self.vocab), stream, len(stream) - len(ids))

    def log_proba_all(self, history: list[int]) -> np.ndarray:
        """log p(w | history) for every word of the vocabulary (a test of normalisation)."""
        V = len(self.vocab)
        h = np.asarray(history[-(self.order - 1):] if self.order > 1 else [], np.int64)
        streams = np.concatenate([np.tile(h, (V, 1)), np.arange(V)[:, None]], axis=1)
        return np.array([stream_log_probs(self.tables, V, s, len(h))[0] for s in streams])

    def save(self, path: str | Path) -> None:
        arrays = {}
        for k, t in enumerate(self.tables, start=1):
            arrays.update({f"keys{k}": t.keys, f"counts{k}": t.counts, f"totals{k}": t.totals,
                           f"gammas{k}": t.gammas, f"discounts{k}": t.discounts})
        save_model_dir(path, KIND, {"ngram": {"order": self.order, "smoothing": "interpolated modified kneser-ney"},
                                    "meta": self.meta}, arrays, self.vocab)

    @classmethod
    def load(cls, path: str | Path) -> NGramModel:
        config, arrays, vocab = load_model_dir(path, KIND)
        try:
            order = int(config["ngram"]["order"])
            tables = [OrderTable(*(arrays[f"{name}{k}"] for name in ("keys", "counts", "totals", "gammas",
                                                                         "discounts")))
                      for k in range(1, order + 1)]
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFormatError(f"{path}: not a valid n-gram model ({e})") from e
        return cls(tables, vocab, config.get("meta", {}))


def train_ngram(corpus: str, order: int, out: str | Path) -> dict:
    """Train on the corpus's train split, save OUT/model, report valid perplexity; the summary."""
    t0 = time.perf_counter()
    streams, vocab = load_corpus(corpus)
    split_ids = {k: vocab.ids(v) for k, v in streams.items()}
    model = NGramModel.train(split_ids["train"], order, vocab, {"corpus": corpus})
    out = Path(out)
    model.save(out / "model")
    summary = {"order": order, "corpus": corpus, "train_tokens": int(len(split_ids["train"])),
               "ngrams": [int(len(t.keys)) for t in model.tables]}
    before = split_ids["train"]
    for split in SPLITS[1:2]:
        if split in split_ids:
            nll = model.token_nll(split_ids[split], before)
            summary[f"{split}_perplexity"] = float(math.exp(nll.mean()))
            console.print(f"{split} perplexity {summary[f'{split}_perplexity']:.2f} on {len(nll):,} tokens")
    summary["wall_seconds"] = time.perf_counter() - t0
    write_json(out / "summary.json", summary)
    console.print(f"done: {order}-gram interpolated modified Kneser-Ney, {summary['ngrams']} distinct n-grams by "
                  f"order, {summary['wall_seconds']:.1f}s; model in {out / 'model'}")
    return summary
