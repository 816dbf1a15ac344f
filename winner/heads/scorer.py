"""The max-margin window scorer: one unnormalised score per window for "is the centre word a <label>?".

s = Uᵀ f(W x + b) is the core WindowMLP with one output and no built-in loss, trained with the ranking
loss of Collobert et al. (2011), https://jmlr.org/papers/v12/collobert11a.html: J = max(0, margin - s + s_c)
for every true window (centre of the label's type) and each of K corrupt windows (any window whose centre
is not of that type) drawn afresh every epoch. Scores are not probabilities, so the model keeps the
threshold that maximises token-level F1 on dev.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from winner.core import gradcheck
from winner.core.console import console, progress_bar
from winner.core.gradcheck import CaseReport
from winner.core.loop import Epoch, KeptWeights, LoopSettings, LoopState, Metric, fit, write_json
from winner.core.mlp import MLPConfig, SparseGrads, WindowMLP
from winner.core.optim import Optimizer
from winner.data.conll import Sentence
from winner.data.hub import load_sentences
from winner.data.labelled import embedding_table, replace_rare_with_unk, resolve_data
from winner.data.vocab import PAD, Vocab
from winner.data.windows import CASINGS, featurize
from winner.errors import ModelFormatError, WinnerError
from winner.heads.model_io import load_window_head, resolve_model_dir, save_mlp_model
from winner.heads.settings import ScoreSettings

KIND = "scorer"
# A checkpoint holds the whole table and Adam's moments (~400 MB with all of GloVe) while an epoch takes
# seconds, so it is written at most this often (and after the last epoch) rather than after every epoch.


# ---------------------------------------------------------------- windows and pairs


def centre_is_label(tag_sequences: Sequence[Sequence[str]], label: str) -> np.ndarray:
    """(N_tokens,) bool: the token's tag has type `label` (any prefix B-/I-/E-/S-), in every scheme."""
    return np.fromiter((t != "O" and t[2:] == label for tags in tag_sequences for t in tags), dtype=np.bool_)


def entity_types(tag_sequences: Sequence[Sequence[str]]) -> list[str]:
    return sorted({t[2:] for tags in tag_sequences for t in tags if t != "O"})


def sample_pairs(is_true: np.ndarray, k: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(true window indices in a fresh order (n,), k corrupt window indices for each (n, k)) for one epoch.

    Corrupt windows are drawn uniformly, with replacement, from the windows whose centre is not the label,
    by np.random.default_rng([seed, epoch]): the same seed and epoch give the same pairs.
    """
    true_idx = np.flatnonzero(is_true)
    negatives = np.flatnonzero(~is_true)
    if true_idx.size == 0 or negatives.size == 0:
        raise WinnerError(f"need windows both with and without the label's centre, found {true_idx.size} true "
                          f"and {negatives.size} others")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(true_idx)
    corrupt = negatives[rng.integers(0, negatives.size, size=(order.size, k))]
    return order, corrupt


# ---------------------------------------------------------------- the hinge


def hinge_grads(model: WindowMLP, ids: np.ndarray, feats: np.ndarray, n_true: int, margin: float,
                train: bool = False, seed: int = 0, step: int = 0) -> tuple[float, int, SparseGrads]:
    """Loss, number of violated pairs and gradients of one stacked batch of B true windows + their corrupt ones.

    Rows [0, B) are true windows; row B + i*K + k is the k-th corrupt window of true window i. Loss =
    sum of J = max(0, margin - s_i + s_ik) over pairs / B. Only violated pairs (J > 0) send gradient: +1/B
    into their corrupt row, -1/B into their true row. All rows go through one forward, so a word or a
    weight used by both windows of a pair gets both contributions added.
    """
    N = ids.shape[0]
    B = n_true
    if B <= 0 or (N - B) % B:
        raise ValueError(f"a stacked batch holds B true windows and K*B corrupt ones; got {N} rows for B={B}")
    k = (N - B) // B
    Z, backprop = model.forward(ids, feats, train=train, seed=seed, step=step)
    s = Z[:B, 0].astype(np.float64)
    sc = Z[B:, 0].astype(np.float64).reshape(B, k)
    J = margin - s[:, None] + sc  # (B, K)
    active = J > 0.0
    loss = float(J[active].sum()) / B
    dZ = np.zeros((N, 1), dtype=np.float64)
    dZ[B:, 0] = active.reshape(-1) / B
    dZ[:B, 0] = -active.sum(axis=1) / B
    return loss, int(active.sum()), backprop(dZ)


def dense_grads(model: WindowMLP, grads: SparseGrads) -> dict[str, np.ndarray]:
    """Every parameter's gradient as a full array (tables included): for gradient checks and tests."""
    out = {"E": np.zeros_like(model.E), "F": np.zeros_like(model.F)}
    np.add.at(out["E"], grads.rows_E, grads.G_E)
    np.add.at(out["F"], grads.rows_F, grads.G_F)
    off = 0
    for name, view in model.params.items():
        if name in ("E", "F"):
            continue
        out[name] = grads.theta[off : off + view.size].reshape(view.shape).copy()
        off += view.size
    return out


# ---------------------------------------------------------------- threshold and scores


def best_threshold(scores: np.ndarray, gold: np.ndarray) -> tuple[float, dict]:
    """The threshold (predict positive iff score >= it) with the best token-level F1, and its P/R/F1.

    Cuts are only made between distinct scores; the threshold is the midpoint to the next lower score.
    """
    scores = np.asarray(scores, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.bool_)
    n_pos = int(gold.sum())
    if n_pos == 0:
        raise WinnerError("no token of the label's type in the data: cannot choose a threshold")
    order = np.argsort(-scores, kind="stable")
    s, g = scores[order], gold[order]
    tp = np.cumsum(g)
    predicted = np.arange(1, s.size + 1)
    f1 = 2.0 * tp / (predicted + n_pos)
    f1[:-1][s[1:] == s[:-1]] = -1.0  # a cut inside a run of equal scores is not a threshold
    i = int(np.argmax(f1))
    threshold = float(s[i]) if i == s.size - 1 else float((s[i] + s[i + 1]) / 2)
    return threshold, token_scores(scores >= threshold, gold)


def token_scores(pred: np.ndarray, gold: np.ndarray) -> dict:
    """Token-level precision, recall and F1 of a boolean prediction."""
    tp = int(np.sum(pred & gold))
    n_pred, n_gold = int(pred.sum()), int(gold.sum())
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def ranking_scores(scores: np.ndarray, gold: np.ndarray) -> dict:
    """ROC-AUC and average precision over all windows (scikit-learn)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if gold.all() or not gold.any():
        raise WinnerError("ROC-AUC needs windows both with and without the label's centre")
    return {"auc": float(roc_auc_score(gold, scores)),
            "average_precision": float(average_precision_score(gold, scores))}


# ---------------------------------------------------------------- the model


@dataclass
class ScorerSpec:
    """What a scorer needs beyond its MLP."""

    window: int
    label: str
    margin: float
    threshold: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


class Scorer:
    """A trained (or training) window scorer: MLP with one output + word vocabulary + threshold."""

    def __init__(self, model: WindowMLP, words: Vocab, spec: ScorerSpec):
        if model.config.n_out != 1:
            raise ModelFormatError(f"a scorer has one output, this MLP has n_out={model.config.n_out}")
        if model.config.n_positions != 2 * spec.window + 1:
            raise ModelFormatError(f"the MLP reads {model.config.n_positions} positions, expected 2*window+1 = "
                                   f"{2 * spec.window + 1}")
        if model.config.n_features != len(CASINGS):  # numba does not check bounds: a smaller F would be overrun
            raise ModelFormatError(f"the MLP has {model.config.n_features} casing rows, expected {len(CASINGS)}")
        if model.config.vocab_size != len(words):
            raise ModelFormatError(f"the MLP has {model.config.vocab_size} word rows, the vocabulary {len(words)}")
        self.model = model
        self.words = words
        self.spec = spec

    def featurize(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        return featurize(sentences, self.words, self.spec.window)

    def score_windows(self, ids: np.ndarray, feats: np.ndarray, batch: int = 4096) -> np.ndarray:
        """(N,) float64 scores of featurised windows."""
        if ids.shape[0] == 0:
            return np.zeros(0)
        return self.model.predict_logits(ids, feats, batch=batch)[:, 0].astype(np.float64)

    def score(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """(N_tokens,) scores of the windows centred on every token of every sentence."""
        return self.score_windows(*self.featurize(sentences))

    def save(self, path: str | Path, training: dict | None = None) -> None:
        save_mlp_model(path, KIND, self.model, self.words, self.spec.to_json(), training)

    @classmethod
    def load(cls, path: str | Path) -> Scorer:
        return cls(*load_window_head(path, KIND, ScorerSpec))


def build_scorer(settings: ScoreSettings, train: list[Sentence]) -> tuple[Scorer, dict, np.ndarray]:
    """A freshly initialised scorer for `train` (vocabulary and embeddings exactly as the tagger builds them),
    embedding stats, and which vocabulary words have a pretrained vector."""
    rng = np.random.default_rng(settings.seed)
    table, words, stats, has_vector = embedding_table(settings.embeddings, settings.max_pretrained, train, rng,
                                                      settings.quiet, settings.trust_pickle)
    embed_dim = table.shape[1] if table is not None else settings.random_embed_dim
    config = MLPConfig(
        n_positions=2 * settings.window + 1, vocab_size=len(words), embed_dim=embed_dim, n_out=1,
        hidden=settings.hidden_sizes(), n_features=len(CASINGS), feature_dim=settings.casing_dim,
        activation=settings.activation, loss="none", dropout_input=settings.dropout,
        dropout_hidden=settings.hidden_dropout)
    model = WindowMLP(config, seed=settings.seed, E=table)
    spec = ScorerSpec(settings.window, settings.label, settings.margin)
    return Scorer(model, Vocab(words), spec), stats, has_vector


# ---------------------------------------------------------------- training


def train_scorer(settings: ScoreSettings) -> dict:
    """Train with the max-margin loss, early-stop on dev token F1 at its best threshold, keep the best model
    (with that threshold) in OUT/model; returns the summary also written to OUT/summary.json."""
    t_all = time.perf_counter()
    out = Path(settings.out)
    if settings.corrupt_per_true < 1:
        raise WinnerError("--corrupt-per-true must be at least 1")
    train, dev, train_src, dev_src = resolve_data(settings.train, settings.dev)
    train_tags = [s.tags for s in train]
    if settings.label not in entity_types(train_tags):
        raise WinnerError(f"label {settings.label!r} does not occur in {train_src}; its types are "
                          f"{entity_types(train_tags)}")
    is_true = centre_is_label(train_tags, settings.label)
    dev_gold = centre_is_label([s.tags for s in dev], settings.label)
    if not dev_gold.any():
        raise WinnerError(f"label {settings.label!r} does not occur in the dev data {dev_src}")
    console.print(f"train: {train_src} ({len(train):,} sentences, {is_true.size:,} windows, {int(is_true.sum()):,} "
                  f"centred on {settings.label})")
    console.print(f"dev:   {dev_src} ({len(dev):,} sentences, {dev_gold.size:,} windows)")

    scorer, emb_stats, has_vector = build_scorer(settings, train)
    model = scorer.model
    ids, feats = scorer.featurize([s.tokens for s in train])
    # the tagger's word dropout, so that <unk> is trained
    ids = replace_rare_with_unk(ids, scorer.words, has_vector, settings.unk_replace,
                                np.random.default_rng([settings.seed, 1]))
    dev_ids, dev_feats = scorer.featurize([s.tokens for s in dev])
    optimizer = Optimizer(settings.optimizer, lr=settings.lr, embed_lr_scale=settings.embed_lr_scale, l2=settings.l2,
                          average_windows=settings.average * int(is_true.sum()))  # an epoch: every true window
    console.print(f"model: window {2 * settings.window + 1}, {len(scorer.words):,} words x {model.config.embed_dim}, "
                  f"hidden {model.config.hidden}, {model.n_parameters():,} parameters; {settings.corrupt_per_true} "
                  f"corrupt windows per true window, margin {settings.margin}")

    meta = {"settings": asdict(settings), "train_source": train_src, "dev_source": dev_src,
            "embedding_stats": emb_stats}
    trainee = ScorerTraining(scorer, optimizer, ids, feats, is_true, dev_ids, dev_feats, dev_gold, settings,
                             lambda state, dev: scorer.save(out / "model", {**meta, "epoch": state.best_epoch,
                                                                            "dev": dev}))
    loop = LoopSettings.of(settings)
    result = fit(trainee, out, loop)
    state, compile_seconds = result.state, result.compile_seconds
    best = next((h for h in state.history if h["epoch"] == state.best_epoch), {})
    summary = {"best_dev_f1": state.best, **result.summary(settings.seed, out / "model"),
               "threshold": best.get("dev threshold"), "dev_auc": best.get("dev AUC"),
               "dev_average_precision": best.get("dev AP"), "wall_seconds": time.perf_counter() - t_all,
               "label": settings.label}
    write_json(out / "summary.json", summary)
    console.print(f"done: best dev F1 {state.best:.4f} at epoch {state.best_epoch} of {state.epoch} (threshold "
                  f"{summary['threshold']:+.4f}); {summary['train_seconds']:.0f}s training "
                  f"(+{compile_seconds:.1f}s JIT), {summary['wall_seconds']:.0f}s in all; model in {out / 'model'}")
    return summary


class ScorerTraining:
    """The scorer as a Trainee of the core's loop: pairs of a true window and K corrupt ones per step, the dev
    score is token F1 at the F1-maximising threshold, which the saved model keeps."""

    def __init__(self, scorer: Scorer, optimizer, ids: np.ndarray, feats: np.ndarray, is_true: np.ndarray,
                 dev_ids: np.ndarray, dev_feats: np.ndarray, dev_gold: np.ndarray, settings: ScoreSettings,
                 save: Callable[[LoopState, dict], None]):
        self.scorer, self.model, self.optimizer = scorer, scorer.model, optimizer
        self.ids, self.feats, self.is_true = ids, feats, is_true
        self.dev_ids, self.dev_feats, self.dev_gold = dev_ids, dev_feats, dev_gold
        self.settings, self.save = settings, save
        self.metric = Metric("dev F1")
        self.chance_loss = settings.corrupt_per_true * settings.margin  # every pair violated by its margin
        self.last: dict = {}  # the last evaluation: threshold and scores
        self.kept = KeptWeights()

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernels on throwaway copies."""
        s = self.settings
        model, opt = copy.deepcopy(self.model), copy.deepcopy(self.optimizer)
        order, corrupt = sample_pairs(self.is_true, s.corrupt_per_true, s.seed, 0)
        rows = np.concatenate([order[:2], corrupt[:2].reshape(-1)])
        _, _, grads = hinge_grads(model, self.ids[rows], self.feats[rows], min(2, order.size), s.margin, train=True)
        opt.step(model, grads)
        model.predict_logits(self.ids[:2], self.feats[:2])

    def train_epoch(self, epoch: int, quiet: bool) -> Epoch:
        """Every true window once, each with K fresh corrupt windows; the loss per true window. A non-finite
        loss stops the epoch and is returned."""
        s = self.settings
        K, B = s.corrupt_per_true, s.batch_size
        order, corrupt = sample_pairs(self.is_true, K, s.seed, epoch)
        n = order.size
        total, violated = 0.0, 0
        with progress_bar(f"epoch {epoch}", n, quiet) as advance:
            for start in range(0, n, B):
                b = min(B, n - start)
                rows = np.concatenate([order[start : start + b], corrupt[start : start + b].reshape(-1)])
                loss, n_active, grads = hinge_grads(self.model, self.ids[rows], self.feats[rows], b, s.margin,
                                                    train=True, seed=s.seed, step=self.optimizer.steps)
                if not np.isfinite(loss):
                    return Epoch(loss, n * (K + 1))
                self.optimizer.step(self.model, grads)
                self.optimizer.count_windows(self.model, b)
                total += loss * b
                violated += n_active
                advance(b)
        return Epoch(total / n, n * (K + 1), {"violated_pairs": violated / (n * K)})

    def evaluate(self) -> tuple[float, dict]:
        with self.kept.evaluating(self.model, self.optimizer):
            dev_scores = self.scorer.score_windows(self.dev_ids, self.dev_feats)
        threshold, prf = best_threshold(dev_scores, self.dev_gold)
        ranking = ranking_scores(dev_scores, self.dev_gold)
        self.last = {"threshold": threshold, "dev": {**prf, **ranking}}
        return prf["f1"], {"dev precision": prf["precision"], "dev recall": prf["recall"],
                           "dev threshold": threshold, "dev AUC": ranking["auc"],
                           "dev AP": ranking["average_precision"]}

    def after_evaluation(self, epoch: int, improved: bool) -> None:
        pass

    def save_best(self, state: LoopState) -> None:
        self.scorer.spec.threshold = self.last["threshold"]
        with self.kept.saving(self.model):
            self.save(state, self.last["dev"])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# ---------------------------------------------------------------- evaluate and rank


def evaluate_scorer(model_dir: str | Path, data: str) -> dict:
    """ROC-AUC and average precision over all windows of `data`, token P/R/F1 at the stored threshold."""
    scorer = load_scorer(model_dir)
    sentences = load_sentences(data, split="test")
    gold = centre_is_label([s.tags for s in sentences], scorer.spec.label)
    scores = scorer.score([s.tokens for s in sentences])
    result = {**ranking_scores(scores, gold), **token_scores(scores >= scorer.spec.threshold, gold),
              "threshold": scorer.spec.threshold, "label": scorer.spec.label, "windows": int(gold.size),
              "positives": int(gold.sum())}
    return result


def format_evaluation(r: dict) -> str:
    return (f"label {r['label']}: {r['windows']:,} windows, {r['positives']:,} centred on {r['label']}\n"
            f"ROC-AUC            {r['auc']:.4f}\n"
            f"average precision  {r['average_precision']:.4f}\n"
            f"at threshold {r['threshold']:+.4f}: precision {100 * r['precision']:.2f}  recall "
            f"{100 * r['recall']:.2f}  F1 {100 * r['f1']:.2f}")


def load_scorer(path: str | Path) -> Scorer:
    """A saved scorer from a model directory or a run directory holding one in model/."""
    return Scorer.load(resolve_model_dir(path))


def rank_windows(scorer: Scorer, sentences: list[list[str]], top: int | None = None) -> list[dict]:
    """Every window of `sentences`, best score first: {window, centre, score, sentence, position}."""
    scores = scorer.score(sentences)
    w = scorer.spec.window
    records, k = [], 0
    for i, tokens in enumerate(sentences):
        padded = [PAD] * w + list(tokens) + [PAD] * w
        for j, token in enumerate(tokens):
            records.append({"window": padded[j : j + 2 * w + 1], "centre": token, "score": float(scores[k]),
                            "sentence": i, "position": j})
            k += 1
    records.sort(key=lambda r: -r["score"])  # stable: ties keep text order
    return records[:top] if top is not None else records


def format_windows(records: list[dict], threshold: float | None = None) -> str:
    """One line per window: rank, score, sentence:position, the window with its centre in [brackets]."""
    lines = []
    for rank, r in enumerate(records, 1):
        w = len(r["window"]) // 2
        words = [f"[{t}]" if i == w else t for i, t in enumerate(r["window"])]
        mark = " *" if threshold is not None and r["score"] >= threshold else "  "
        lines.append(f"{rank:4d} {r['score']:+8.3f}{mark} {r['sentence']}:{r['position']:<4d} {' '.join(words)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- gradient checks


def _hinge_case(name: str, config_kw: dict, n_true: int, k: int, seed: int, train: bool = False,
                inactive: bool = False) -> CaseReport:
    """Gradient check of the hinge path on a tiny float64 model, with one word shared by a true and its corrupt
    window. The margin is placed so that every pair's violation is far (>= 0.01) from the kink at 0, and the
    loss refuses to be evaluated if a finite-difference step ever flips a pair; with inactive=True every pair
    is satisfied (J = 0) and every gradient must be zero."""
    config = MLPConfig(n_out=1, loss="none", dtype="float64", **config_kw)
    rng = np.random.default_rng(seed)
    model = WindowMLP(config, seed=seed)
    n = n_true * (1 + k)
    ids, feats = gradcheck.tiny_windows(rng, n, config.n_positions, config.vocab_size, config.n_features)
    c = config.n_positions // 2
    ids[n_true, c] = ids[0, c]  # true window 0 and its first corrupt window share the centre word ...
    ids[n_true, 0] = ids[0, -1]  # ... and one word at different positions
    Z, _ = model.forward(ids, feats, train=train, seed=seed, step=1)
    gaps = (Z[:n_true, 0][:, None] - Z[n_true:, 0].reshape(n_true, k)).reshape(-1)  # J > 0 iff margin > gap
    if inactive:
        margin = float(gaps.min()) - 0.5
    else:  # the middle of the widest gap between kinks: some pairs violated, some not
        g = np.sort(gaps)
        i = int(np.argmax(np.diff(g)))
        margin = float(g[i] + g[i + 1]) / 2
    if np.min(np.abs(margin - gaps)) < 1e-2:
        raise AssertionError(f"{name}: the margin lies within 0.01 of a kink; choose another seed")
    pattern = margin > gaps

    def loss_and_grad() -> tuple[float, dict[str, np.ndarray]]:
        Z, _ = model.forward(ids, feats, train=train, seed=seed, step=1)
        now = margin > (Z[:n_true, 0][:, None] - Z[n_true:, 0].reshape(n_true, k)).reshape(-1)
        if not np.array_equal(now, pattern):
            raise AssertionError(f"{name}: a finite-difference step crossed the hinge's kink")
        loss, _, grads = hinge_grads(model, ids, feats, n_true, margin, train=train, seed=seed, step=1)
        return loss, dense_grads(model, grads)

    used = {"E": np.unique(ids), "F": np.unique(feats)}
    return gradcheck.check(name, model.params, loss_and_grad, used)


def gradcheck_cases() -> list[CaseReport]:
    """The scorer's hinge path: tanh, deeper sigmoid with dropout, and all pairs satisfied (zero gradient)."""
    base = dict(n_positions=5, vocab_size=14, embed_dim=3, n_features=5, feature_dim=2)
    return [
        _hinge_case("scorer hinge, tanh, shared word", {**base, "hidden": (6,)}, n_true=3, k=2, seed=0),
        _hinge_case("scorer hinge, sigmoid, 2 hidden, dropout, shared word",
                    {**base, "hidden": (6, 4), "activation": "sigmoid", "dropout_input": 0.3,
                     "dropout_hidden": 0.2}, n_true=2, k=3, seed=3, train=True),
        _hinge_case("scorer hinge, every pair satisfied (J = 0)", {**base, "hidden": (5,)}, n_true=2, k=2, seed=2,
                    inactive=True),
    ]
