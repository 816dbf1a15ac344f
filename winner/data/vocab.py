"""Vocab: an id for every string, with fixed special ids, saved as json.

Used for words (NER, scorer, LM), casing classes and tags. Special tokens come first, so
`<pad>` is 0 and `<unk>` is 1 whenever they are present.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PAD = "<pad>"
UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"


class Vocab:
    """itos list + stoi dict. Unknown strings map to `<unk>` when the vocab has one."""

    def __init__(self, itos: Iterable[str]):
        self.itos: list[str] = list(itos)
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dupes = [s for s, n in Counter(self.itos).items() if n > 1]
            raise ValueError(f"vocabulary has duplicate entries: {dupes[:5]}")
        self.unk_id: int | None = self.stoi.get(UNK)
        self.pad_id: int | None = self.stoi.get(PAD)

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        specials: Iterable[str] = (PAD, UNK),
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocab:
        """Specials first, then tokens by falling frequency (ties alphabetical, so builds are reproducible)."""
        specials = list(specials)
        counts = Counter(tokens)
        for s in specials:
            counts.pop(s, None)
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max(0, max_size - len(specials))]
        return cls(specials + kept)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, s: str) -> bool:
        return s in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def id(self, s: str) -> int:
        i = self.stoi.get(s, self.unk_id)
        if i is None:
            raise KeyError(f"{s!r} is not in the vocabulary and it has no {UNK}")
        return i

    def ids(self, strings: Iterable[str]) -> np.ndarray:
        """int32 ids; unknown strings get the `<unk>` id."""
        strings = list(strings)
        get, unk = self.stoi.get, self.unk_id
        out = [get(s, unk) for s in strings]
        if unk is None and None in out:
            missing = next(s for s, i in zip(strings, out, strict=False) if i is None)
            raise KeyError(f"{missing!r} is not in the vocabulary and it has no {UNK}")
        return np.asarray(out, dtype=np.int32)

    def to_json(self) -> list[str]:
        return list(self.itos)

    @classmethod
    def from_json(cls, data: list[str]) -> Vocab:
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            raise ValueError("a vocabulary must be a json list of strings")
        return cls(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
