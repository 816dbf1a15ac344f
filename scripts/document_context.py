"""Entity F1 of saved taggers on a CoNLL file read three ways: with the file's documents (what `winner ner
evaluate` does), each sentence a document by itself (what a model with document codes sees when it is given
sentences alone, as `winner ner tag` gives it a line of text), and the whole file as one document; with the
tokens per second of each reading's `Tagger.predict` call (featurizing included; the median of 3), on real text.
With --vote, also the F1 by documents with the other `consistency` setting (one entity type per name in a
document, or not).

    python scripts/document_context.py RUN [RUN ...] --data ../shared/data/conll2003/valid.txt [--vote]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from winner.data.conll import convert_tags, detect_scheme, read_conll
from winner.heads.metrics import entity_scores
from winner.heads.model_io import resolve_model_dir
from winner.heads.tagger import Tagger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories (or model directories)")
    parser.add_argument("--data", required=True, help="a CoNLL file with -DOCSTART- lines")
    parser.add_argument("--vote", action="store_true", help="also read by documents with the other consistency")
    args = parser.parse_args()
    sentences = read_conll(args.data)
    scheme = detect_scheme([s.tags for s in sentences])
    gold = [convert_tags(s.tags, scheme, "iob2") for s in sentences]
    tokens = [s.tokens for s in sentences]
    readings = {"documents": [s.doc for s in sentences], "sentences alone": list(range(len(sentences))),
                "one document": None}
    for run in args.runs:
        tagger = Tagger.load(resolve_model_dir(run))
        tagger.predict(tokens[:50], scheme="iob2")  # compiled or loaded from numba's cache before any timing
        scores, speed = {}, {}
        for name, docs in readings.items():
            seconds = []
            for _ in range(3):
                start = time.perf_counter()
                predicted = tagger.predict(tokens, scheme="iob2", documents=docs)
                seconds.append(time.perf_counter() - start)
            speed[name] = round(sum(map(len, tokens)) / statistics.median(seconds))
            scores[name] = round(100 * entity_scores(gold, predicted)["f1"], 2)
        if args.vote:
            other = "none" if tagger.spec.consistency == "document" else "document"
            tagger.spec.consistency, saved = other, tagger.spec.consistency
            predicted = tagger.predict(tokens, scheme="iob2", documents=readings["documents"])
            scores[f"documents, consistency {other}"] = round(100 * entity_scores(gold, predicted)["f1"], 2)
            tagger.spec.consistency = saved
        consistency = getattr(tagger.spec, "consistency", "none")  # a tagger of an older winner has none
        print(json.dumps({"run": run, "context": tagger.spec.context, "consistency": consistency, **scores,
                          "tokens_per_s": speed}))


if __name__ == "__main__":
    main()
