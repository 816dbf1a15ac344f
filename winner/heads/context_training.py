"""Training the tagger with context codes (winner.core.context): each minibatch of shuffled windows gets the codes
of its tokens' sentences, built from the current word table, and one update through the ordinary kernels.

The update goes through the general forward/backward (as sentence-level training does), not the fused step: the
codes make each batch's table its own. With character windows, the batch's window words get their character
vectors first and the character CNN its gradient after, as in CharOptimizer's general steps; the codes sum word
vectors only, so the code positions' character columns are zero and pass no gradient on.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from winner.core.chars import CharConfig, CharOptimizer, CharWindowMLP
from winner.core.console import progress_bar
from winner.core.context import (
    CODE_POSITIONS,
    CodedBatch,
    ContextCodes,
    Links,
    coded_loss,
    occurrence_links,
    sentence_bounds,
    within_sentences,
)
from winner.core.gradcheck import CaseReport, check
from winner.core.loop import Epoch, WindowTraining
from winner.core.mlp import MLPConfig, WindowMLP
from winner.data.windows import flat_windows
from winner.heads.scorer import dense_grads


@dataclass(kw_only=True)
class ContextTraining(WindowTraining):
    """A Trainee (winner.core.loop) on shuffled windows with their context codes; dev scoring and saving as
    WindowTraining's."""

    lengths: np.ndarray  # (sentences,) tokens per training sentence, in data's order
    codes: ContextCodes
    links: Links | None = None  # document codes: each token's linked occurrences (winner.core.context.Links)
    alone: float = 0.0  # document codes: the share of sentences an epoch reads as documents by themselves

    def __post_init__(self) -> None:
        self.lo, self.hi = sentence_bounds(self.lengths)
        self.words = np.ascontiguousarray(self.data.ids[:, self.codes.half], np.int32)  # each token's own row
        self.epoch_links = self.links

    def links_of_epoch(self, epoch: int) -> Links | None:
        """The links an epoch reads: a random share `alone` of the sentences (drawn from the seed and the epoch)
        keep only their links inside themselves, so that the model also learns to tag a sentence given alone."""
        if self.links is None or not self.alone:
            return self.links
        alone = np.random.default_rng([self.seed, epoch, 2]).random(len(self.lengths)) < self.alone
        return within_sentences(self.links, np.repeat(alone, self.lengths), self.lo, self.hi)

    def warm_up(self) -> None:
        self.model.check_ids(self.data.ids, self.data.feats)
        clone = copy.deepcopy(self)
        clone.update(np.arange(min(self.batch_size, len(self.words)), dtype=np.int64))

    def train_epoch(self, epoch: int, quiet: bool) -> Epoch:
        n = len(self.words)
        batch = min(self.batch_size, n)
        order = np.random.default_rng([self.seed, epoch]).permutation(n).astype(np.int64)
        self.epoch_links = self.links_of_epoch(epoch)
        total = 0.0
        with progress_bar(f"epoch {epoch}", n, quiet) as advance:
            for s in range(0, n, batch):
                idx = order[s : s + batch]
                total += self.update(idx) * len(idx)
                if not math.isfinite(total):
                    break
                advance(len(idx))
        return Epoch(total / n, n)

    def update(self, idx: np.ndarray) -> float:
        """One update on the windows of tokens idx; returns their mean loss."""
        model, opt = self.model, self.optimizer
        ids, feats = self.data.ids[idx], self.data.feats[idx]
        chars = isinstance(opt, CharOptimizer) and isinstance(model, CharWindowMLP)
        n_words = opt.stage_words(model, ids) if chars else 0
        batch = self.codes.batch(model.E, model.E[:0], ids, feats, idx, self.words, self.lo, self.hi,
                                 self.epoch_links)
        loss, grads = coded_loss(model, batch, self.data.targets[idx], True, self.seed, opt.steps)
        if not math.isfinite(loss):
            return loss
        opt.step(model, grads)
        if chars:
            opt.finish_words(model, _with_code_columns(model, ids, batch), n_words)
        opt.count_windows(model, len(idx))
        return loss


def _with_code_columns(model: CharWindowMLP, ids: np.ndarray, batch: CodedBatch) -> np.ndarray:
    """The windows' word ids with the code positions added (the centre word's id, any staged word would do), after
    zeroing dX of the codes' character columns: the codes hold no character vector, so nothing flows back there."""
    B = ids.shape[0]
    c = model.config
    stride = c.embed_dim + c.feature_dim
    dX = model.scratch(B).dacts[: B * c.n_in].reshape(B, c.n_in)
    P = ids.shape[1]
    for p in range(P, P + CODE_POSITIONS):
        dX[:, p * stride + model.word_dim : p * stride + c.embed_dim] = 0.0
    centre = ids[:, P // 2 : P // 2 + 1]
    return np.ascontiguousarray(np.concatenate([ids] + [centre] * CODE_POSITIONS, axis=1), np.int32)


# ---------------------------------------------------------------- gradient checks


def gradcheck_cases() -> list[CaseReport]:
    """The context codes' first-layer weights (W0's last two blocks) and every word row the codes sum, through the
    whole tagger loss, on four sentences of a tiny float64 model; with and without dropout."""
    return [_context_case("context codes (sentence FOFE), forget 0.7", 0.7, train=False, seed=0),
            _context_case("context codes, forget 0.5, 2 hidden, dropout", 0.5, train=True, seed=1, hidden=(6, 4)),
            _context_case("document codes, forget 0.6, 2 occurrences", 0.6, train=False, seed=2, mode="document"),
            _context_case("document codes, 2 hidden, dropout", 1.0, train=True, seed=3, hidden=(6, 4),
                          mode="document")]


def tiny_context_model(seed: int, hidden: tuple[int, ...] = (5,), dropout: float = 0.0, chars: CharConfig | None = None,
                       dtype: str = "float64") -> WindowMLP:
    """A tiny window-3 tagger network with context codes (5 input positions) over 12 words and 4 features."""
    config = MLPConfig(n_positions=3 + CODE_POSITIONS, vocab_size=12, embed_dim=3 + (chars.n_filters if chars else 0),
                       n_out=4, hidden=hidden, n_features=4, feature_dim=2, dropout_input=dropout, dtype=dtype)
    return WindowMLP(config, seed=seed) if chars is None else CharWindowMLP(config, chars, seed=seed)


def tiny_sentences(rng: np.random.Generator, lengths: tuple[int, ...] = (6, 1, 3, 8),
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(words, lengths, ids, feats): sentences of random words over rows 2..8 (9..11 unused), one word repeated
    far apart in the last sentence (a row summed twice into one code), their window-3 windows (0 = padding)."""
    lengths = np.asarray(lengths, np.int64)
    words = rng.integers(2, 9, size=int(lengths.sum())).astype(np.int32)
    words[-1] = words[-6]
    ids = flat_windows(words, lengths, 1, 0)
    feats = flat_windows(rng.integers(1, 4, size=len(words)).astype(np.int32), lengths, 1, 0)
    return words, lengths, ids, feats


def tiny_links(words: np.ndarray, lengths: np.ndarray, most: int = 2) -> Links:
    """The links of tiny_sentences' tokens, the first two sentences one document and the rest another."""
    return occurrence_links(words.astype(np.int64), np.array([lengths[:2].sum(), lengths[2:].sum()]), most)


def _context_case(name: str, forget: float, train: bool, seed: int, hidden: tuple[int, ...] = (5,),
                  mode: str = "sentence") -> CaseReport:
    model = tiny_context_model(seed, hidden, dropout=0.3 if train else 0.0)
    rng = np.random.default_rng(seed)
    words, lengths, ids, feats = tiny_sentences(rng)
    targets = rng.integers(0, 4, size=len(words))
    codes = ContextCodes(1, forget, 3, 0, mode, 2)
    links = tiny_links(words, lengths) if mode == "document" else None
    lo, hi = sentence_bounds(lengths)
    idx = np.arange(len(words), dtype=np.int64)

    def loss_and_grad() -> tuple[float, dict[str, np.ndarray]]:
        batch = codes.batch(model.E, model.E[:0], ids, feats, idx, words, lo, hi, links)
        loss, grads = coded_loss(model, batch, targets, train, seed, 1)
        return loss, dense_grads(model, grads)

    return check(name, model.params, loss_and_grad, {"E": np.unique(ids), "F": np.unique(np.concatenate(
        [feats.ravel(), [0]]))})

