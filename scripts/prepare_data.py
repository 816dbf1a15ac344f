"""Make the project's shipped data/ from ../shared/data (deterministic: a rerun changes nothing).

  data/wikigold/{train,dev,test}.conll   WikiGold split by document: documents 0-116 train, 117-126 dev,
                                         127-144 test, in file order; 2 columns, tags as in the source (IO)
  data/brown/{train,valid,test}.tokens.txt.gz, meta.json
                                         the Bengio et al. 2003 Brown streams, copied byte for byte

CoNLL-2003 is never copied: its licence does not allow it. See data/README.md for sources and licences.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

from winner.data.conll import count_entities, read_conll, write_conll
from winner.data.resources import BROWN_SPLITS, data_dir, shared_data_dir

WIKIGOLD_SHA256 = "c797a64d0cf73ed058363f77671486bcfd413e70fda1726ad4a6ba624455225f"
# [start, end) document indices: about 80 / 10 / 10 % of the tokens, whole documents, in file order.
WIKIGOLD_DOCS = {"train": (0, 117), "dev": (117, 127), "test": (127, 145)}


def prepare_wikigold(shared: Path, out: Path) -> None:
    """Split WikiGold into whole documents so no article leaks across splits."""
    src = shared / "wikigold" / "wikigold.conll.txt"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if digest != WIKIGOLD_SHA256:
        raise SystemExit(f"{src}: sha256 {digest} differs from the expected {WIKIGOLD_SHA256}")
    sentences = read_conll(src)
    n_docs = max(s.doc for s in sentences) + 1
    if n_docs != WIKIGOLD_DOCS["test"][1]:
        raise SystemExit(f"{src}: expected {WIKIGOLD_DOCS['test'][1]} documents, found {n_docs}")
    print("split  docs  sentences  tokens  entities")
    for split, (start, end) in WIKIGOLD_DOCS.items():
        part = [s for s in sentences if start <= s.doc < end]
        for s in part:
            s.doc -= start
        write_conll(out / "wikigold" / f"{split}.conll", part)
        entities = count_entities(part)
        print(
            f"{split:5}  {end - start:4}  {len(part):9,}  {sum(len(s.tokens) for s in part):6,}  "
            f"{sum(entities.values()):,} {entities}"
        )


def prepare_brown(shared: Path, out: Path) -> None:
    """Copy the prepared LM streams unchanged; their README gives the preparation."""
    src = shared / "brown" / "bengio2003"
    (out / "brown").mkdir(parents=True, exist_ok=True)
    for name in [f"{split}.tokens.txt.gz" for split in BROWN_SPLITS] + ["meta.json"]:
        shutil.copyfile(src / name, out / "brown" / name)
        print(f"copied {src / name} -> {out / 'brown' / name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shared",
        type=Path,
        default=shared_data_dir(),
        help="the shared data folder (default: ../shared/data)",
    )
    parser.add_argument(
        "--out", type=Path, default=data_dir(), help="where to write (default: the repo's data/)"
    )
    args = parser.parse_args(argv)
    if args.shared is None:
        parser.error("../shared/data not found: pass --shared or set WINNER_SHARED_DATA")
    prepare_wikigold(args.shared, args.out)
    prepare_brown(args.shared, args.out)


if __name__ == "__main__":
    main()
