"""Linear mixtures of language models, neural (heads/lm.py) and n-gram (heads/ngram.py):
p(w | h) = sum_m lambda_m p_m(w | h), with the weights given or fitted on the valid split by EM (the weights that
maximise valid likelihood; each model's probabilities are computed once). Every model must share one vocabulary,
so the mixture is as exactly normalised as its parts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from winner.data.conll import read_text
from winner.data.corpus import tokenize
from winner.errors import WinnerError
from winner.heads.lm import SPLITS, LanguageModel, corpus_split_ids, split_windows, token_nll
from winner.heads.model_io import format_tag, resolve_model_dir
from winner.heads.ngram import KIND as NGRAM_KIND
from winner.heads.ngram import NGramModel

EM_ITERATIONS = 500
EM_TOLERANCE = 1e-12  # stop when no weight moves more than this


def load_any(run_dir: str | Path) -> LanguageModel | NGramModel:
    """The neural or n-gram model of a run (or model) directory."""
    path = resolve_model_dir(run_dir)
    found = json.loads((path / "config.json").read_text(encoding="utf-8")).get("format")
    return NGramModel.load(path) if found == format_tag(NGRAM_KIND) else LanguageModel.load(path)


def split_nll(model: LanguageModel | NGramModel, split: str, text: str | Path | None = None) -> np.ndarray:
    """-log p of every token of a split of the model's corpus (after the splits before it), or of a text."""
    if text is not None:
        ids = model.vocab.ids(tokenize(read_text(text), known=model.vocab.stoi))
        if isinstance(model, NGramModel):
            return model.token_nll(ids)
        return token_nll(model.model, *model.windows(ids), output=model.output)
    split_ids = corpus_split_ids(model)
    if split not in split_ids:
        raise WinnerError(f"the corpus {model.meta.get('corpus')} has no {split} split (it has {', '.join(split_ids)})")
    if isinstance(model, NGramModel):
        before = [split_ids[s] for s in SPLITS[: SPLITS.index(split)] if s in split_ids]
        return model.token_nll(split_ids[split], np.concatenate(before) if before else None)
    return token_nll(model.model, *split_windows(split_ids, split, model.context, model.pad_id), output=model.output)


def em_weights(probs: np.ndarray) -> np.ndarray:
    """Mixture weights maximising sum_i log sum_m w_m probs[m, i] (EM from uniform weights)."""
    w = np.full(probs.shape[0], 1.0 / probs.shape[0])
    for _ in range(EM_ITERATIONS):
        mix = w @ probs
        new = (w[:, None] * probs / mix).mean(axis=1)
        done = np.abs(new - w).max() < EM_TOLERANCE
        w = new
        if done:
            break
    return w


def parse_weights(text: str, n: int) -> np.ndarray | None:
    """None for "auto", else n non-negative weights (normalised to sum 1)."""
    if text == "auto":
        return None
    try:
        w = np.array([float(x) for x in text.split(",")])
    except ValueError as e:
        raise WinnerError(f"--mix-weights {text}: expected 'auto' or {n} numbers like 0.7,0.3") from e
    if len(w) != n or (w < 0).any() or w.sum() <= 0:
        raise WinnerError(f"--mix-weights {text}: expected {n} non-negative weights, one per model")
    return w / w.sum()


def evaluate_mixture(run_dirs: list[str | Path], split: str = "valid", weights: str = "auto",
                     text: str | Path | None = None) -> dict:
    """Perplexity of one model, or of the linear mixture of several ("auto": weights fitted on valid)."""
    models = [load_any(r) for r in run_dirs]
    for r, m in zip(run_dirs[1:], models[1:], strict=True):
        if m.vocab.itos != models[0].vocab.itos:
            raise WinnerError(f"{r}: its vocabulary differs from {run_dirs[0]}'s; a mixture needs one vocabulary")
    w = parse_weights(weights, len(models)) if len(models) > 1 else np.ones(1)
    if w is None:
        w = em_weights(np.exp(-np.stack([split_nll(m, "valid") for m in models])))
    probs = np.exp(-np.stack([split_nll(m, split, text) for m in models]))
    nll = -np.log(w @ probs)
    result = {"perplexity": float(math.exp(nll.mean())), "tokens": int(probs.shape[1])}
    if len(models) > 1:
        result["weights"] = [float(x) for x in w]
        result["each"] = [float(math.exp(-np.log(p).mean())) for p in probs]
    return result
