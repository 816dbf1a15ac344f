"""Whole-batch versions of the per-token features in winner.data.windows: one pass over all tokens joined
into one buffer instead of a Python call per token, for the same results.

Lowercasing and digit replacement run on the tokens joined by newlines (no token holds one, and a newline is
neither cased nor case-ignorable, so even the final-sigma rule sees each token alone). Casing classes come
from per-character Unicode flags (the same str methods `casing` calls, cached per code point as they are
met) reduced over each token's characters with numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import repeat

import numpy as np

_DIGIT = re.compile(r"\d")
_SEP = "\n"

# Per-character flags: what str.isalpha/isdigit/isupper/islower/istitle say of the character alone, and
# whether lowercasing changes it.
ALPHA, DIGIT, UPPER, LOWER, TITLE, CHANGES = 1, 2, 4, 8, 16, 32
_UNKNOWN = 255
_flags = np.full(0x110000, _UNKNOWN, dtype=np.uint8)


def char_flags(ch: str) -> int:
    """The flags of one character."""
    upper = ch.isupper()
    return (ALPHA * ch.isalpha() | DIGIT * ch.isdigit() | UPPER * upper | LOWER * ch.islower()
            | TITLE * (ch.istitle() and not upper) | CHANGES * (ch.lower() != ch))


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _flags_of(codes: np.ndarray) -> np.ndarray:
    flags = _flags[codes]
    unknown = flags == _UNKNOWN
    if unknown.any():
        for c in np.unique(codes[unknown]).tolist():
            _flags[c] = char_flags(chr(c))
        flags = _flags[codes]
    return flags


def normalised_forms(tokens: Sequence[str]) -> list[str] | None:
    """`windows.normalise` of every token (lowercase, digits -> 0), or None if a token holds a newline."""
    if not tokens:
        return []
    parts = _DIGIT.sub("0", _SEP.join(tokens).lower()).split(_SEP)
    return parts if len(parts) == len(tokens) else None


def lookup_ids(forms: Sequence[str], stoi: dict[str, int], unk: int | None) -> list[int | None]:
    """stoi.get(form, unk) of every form, in one C-level pass."""
    return list(map(stoi.get, forms, repeat(unk, len(forms))))


def casing_classes(tokens: Sequence[str]) -> np.ndarray | None:
    """`windows.casing` of every token as one int32 array, or None if a token is empty."""
    n = len(tokens)
    if not n:
        return np.zeros(0, dtype=np.int32)
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=n)
    if not lengths.all():
        return None
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    flags = _flags_of(_code_points("".join(tokens)))
    any_flag = np.bitwise_or.reduceat(flags, starts)
    rest = flags & CHANGES
    rest[starts] = 0
    key = (any_flag & (ALPHA | DIGIT | UPPER | LOWER | TITLE)) | ((flags[starts] & UPPER) << 3)
    key |= np.bitwise_or.reduceat(rest, starts) << 1  # CHANGES (32) anywhere after the first character -> 64
    return _CASING_OF_KEY[key]


def _casing_of_key(key: int) -> int:
    """`windows.casing` from a token's flags: any character ALPHA, DIGIT, UPPER, LOWER, TITLE; the first one
    UPPER (32); any after the first CHANGES when lowercased (64)."""
    if not key & ALPHA:
        return 5 if key & DIGIT else 7
    if key & DIGIT:
        return 6
    if key & LOWER and not key & (UPPER | TITLE):
        return 1
    if key & UPPER and not key & (LOWER | TITLE):
        return 3
    if key & 32 and not key & 64:
        return 2
    return 4


_CASING_OF_KEY = np.array([_casing_of_key(k) for k in range(128)], dtype=np.int32)
