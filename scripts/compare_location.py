"""Token-level comparison of a max-margin scorer run and a softmax tagger run on the same test tokens.

A token counts as a LABEL token (LOC by default) when its gold tag has that type (any prefix). The scorer
predicts it when the window centred on it scores at or above the threshold stored in the model; the tagger
predicts it when its decoded tag has that type. Both are scored with the same token-level precision,
recall and F1; the tagger's entity-level F1 for the type (seqeval, conlleval mode) is shown for reference.

  python scripts/compare_location.py --scorer runs/score_s0 --tagger runs/ner_s0 \
      --data ../shared/data/conll2003/test.txt
"""

from __future__ import annotations

import argparse
import json
import sys

from winner.data.conll import convert_tags, detect_scheme
from winner.data.hub import load_sentences
from winner.data.resources import shared_data_dir
from winner.errors import WinnerError
from winner.heads.metrics import entity_scores
from winner.heads.model_io import resolve_model_dir
from winner.heads.scorer import centre_is_label, load_scorer, ranking_scores, token_scores
from winner.heads.tagger import Tagger


def compare(scorer_dir: str, tagger_dir: str, data: str, label: str | None = None) -> dict:
    """{"label", "tokens", "positives", "scorer": {...}, "tagger": {...}, "f1_difference"} on `data`."""
    scorer = load_scorer(scorer_dir)
    label = label or scorer.spec.label
    tagger = Tagger.load(resolve_model_dir(tagger_dir))
    sentences = load_sentences(data, split="test")
    tokens = [s.tokens for s in sentences]
    gold = centre_is_label([s.tags for s in sentences], label)
    scores = scorer.score(tokens)
    scorer_result = {**token_scores(scores >= scorer.spec.threshold, gold), **ranking_scores(scores, gold),
                     "threshold": scorer.spec.threshold, "label": scorer.spec.label}
    predicted = tagger.predict(tokens)
    tagger_result = token_scores(centre_is_label(predicted, label), gold)
    scheme = detect_scheme([s.tags for s in sentences])
    entities = entity_scores([convert_tags(s.tags, scheme, "iob2") for s in sentences],
                             [convert_tags(p, tagger.spec.output_scheme, "iob2") for p in predicted])
    tagger_result["entity_f1"] = entities["per_type"].get(label, {}).get("f1", 0.0)
    return {"label": label, "data": data, "tokens": int(gold.size), "positives": int(gold.sum()),
            "scorer": scorer_result, "tagger": tagger_result,
            "f1_difference": scorer_result["f1"] - tagger_result["f1"]}


def format_comparison(r: dict) -> str:
    s, t = r["scorer"], r["tagger"]
    scorer_name = f"scorer (threshold {s['threshold']:+.3f})"
    lines = [f"{r['data']}: {r['tokens']:,} tokens, {r['positives']:,} of type {r['label']} (token level)",
             f"{'model':<30} {'precision':>9} {'recall':>9} {'f1':>9}",
             f"{scorer_name:<30} {100 * s['precision']:9.2f} "
             f"{100 * s['recall']:9.2f} {100 * s['f1']:9.2f}",
             f"{'softmax tagger':<30} {100 * t['precision']:9.2f} {100 * t['recall']:9.2f} {100 * t['f1']:9.2f}",
             f"scorer F1 - tagger F1: {100 * r['f1_difference']:+.2f} points",
             f"scorer ROC-AUC {s['auc']:.4f}, average precision {s['average_precision']:.4f}; "
             f"tagger entity-level {r['label']} F1 {100 * t['entity_f1']:.2f}"]
    if s["label"] != r["label"]:
        lines.append(f"note: the scorer was trained for {s['label']}, compared here on {r['label']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    shared = shared_data_dir()
    default_data = str(shared / "conll2003" / "test.txt") if shared else None
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scorer", required=True, help="scorer run or model directory (winner score train)")
    parser.add_argument("--tagger", required=True, help="tagger run or model directory (winner ner train)")
    parser.add_argument("--data", default=default_data, required=default_data is None,
                        help=f"CoNLL file or hub dataset name (default: {default_data})")
    parser.add_argument("--label", default=None, help="entity type to compare (default: the scorer's label)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    try:
        result = compare(args.scorer, args.tagger, args.data, args.label)
    except WinnerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else format_comparison(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
