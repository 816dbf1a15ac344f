"""Scores: entity-level precision/recall/F1 (the only seqeval import), and perplexity.

Entity scores use seqeval's default mode, which matches conlleval on IOB1/IOB2 data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """{"precision", "recall", "f1", "per_type": {TYPE: {precision, recall, f1, support}}}, values in [0, 1]."""
    from seqeval.metrics import classification_report

    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred, strict=True)):
        raise ValueError("gold and predicted tag sequences differ in length")
    report = classification_report(list(map(list, gold)), list(map(list, pred)), output_dict=True,
                                   zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    per_type = {
        t: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
            "support": int(v["support"])}
        for t, v in report.items() if not t.endswith(" avg")
    }
    return {"precision": float(micro["precision"]), "recall": float(micro["recall"]),
            "f1": float(micro["f1-score"]), "per_type": per_type}


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, dict[str, int]]:
    """{TYPE: {"gold", "predicted", "correct"}}: entities as conlleval reads them, correct = same type and span."""
    from seqeval.metrics.sequence_labeling import get_entities

    g = set(get_entities([list(s) for s in gold]))
    p = set(get_entities([list(s) for s in pred]))
    types = sorted({t for t, _, _ in g | p})
    return {t: {"gold": sum(e[0] == t for e in g), "predicted": sum(e[0] == t for e in p),
                "correct": sum(e[0] == t for e in g & p)} for t in types}


def token_accuracy(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """The share of tokens whose predicted tag equals the gold one (conlleval's accuracy)."""
    pairs = [(a, b) for g, p in zip(gold, pred, strict=True) for a, b in zip(g, p, strict=True)]
    return sum(a == b for a, b in pairs) / max(len(pairs), 1)


def perplexity(total_neg_log_likelihood: float, n_tokens: int) -> float:
    """exp(mean negative log-likelihood in nats)."""
    return math.exp(total_neg_log_likelihood / n_tokens)
