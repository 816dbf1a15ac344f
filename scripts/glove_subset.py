"""Build data/glove/: the subset of GloVe 6B 100-d that winner ships as its default vectors.

Kept: the `--top` most frequent GloVe words (the file lists them by frequency) plus every GloVe word that occurs,
lowercased, in the shipped corpora (WikiGold, Brown), as float16 (a vector's entries are a few units at most:
float16 keeps them to ~3 significant digits, far below what a tagger can tell). Deterministic: running it again
writes the same bytes.

    python scripts/glove_subset.py [--top 100000] [--source ../shared/data/glove/glove.6B.100d.txt.gz]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np

from winner.data.conll import read_conll
from winner.data.embeddings import SHIPPED_GLOVE_DIR
from winner.data.resources import brown_stream_path, data_dir, shared_data_dir, wikigold_path


def corpus_words() -> set[str]:
    """Every token of the shipped corpora, lowercased."""
    words = {w.lower() for split in ("train", "dev", "test") for s in read_conll(wikigold_path(split))
             for w in s.tokens}
    for split in ("train", "valid", "test"):
        with gzip.open(brown_stream_path(split), "rt", encoding="utf-8") as f:
            words.update(w.lower() for line in f for w in line.split())
    return words


def main() -> None:
    shared = shared_data_dir()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=100_000, help="most frequent GloVe words kept")
    parser.add_argument("--source", type=Path,
                        default=shared / "glove" / "glove.6B.100d.txt.gz" if shared else None)
    parser.add_argument("--out", type=Path, default=data_dir() / SHIPPED_GLOVE_DIR)
    args = parser.parse_args()
    if args.source is None or not args.source.is_file():
        raise SystemExit(f"GloVe file not found: {args.source}")
    wanted = corpus_words()
    words, rows = [], []
    with gzip.open(args.source, "rt", encoding="utf-8") as f:
        for rank, line in enumerate(f):
            word, *values = line.rstrip("\n").split(" ")
            if rank < args.top or word in wanted:
                words.append(word)
                rows.append(np.asarray(values, dtype=np.float32))
    vectors = np.stack(rows).astype(np.float16)
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "vectors.npy", vectors, allow_pickle=False)
    (args.out / "words.json").write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    meta = {"source": args.source.name, "source_sha256": hashlib.sha256(args.source.read_bytes()).hexdigest(),
            "top": args.top, "words": len(words), "dim": int(vectors.shape[1]), "dtype": "float16",
            "licence": "PDDL 1.0 (GloVe, Pennington, Socher and Manning 2014)"}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{len(words):,} words ({len(words) - min(args.top, len(words)):,} beyond the top {args.top:,} from the "
          f"shipped corpora), {size / 1e6:.1f} MB in {args.out}")


if __name__ == "__main__":
    main()
