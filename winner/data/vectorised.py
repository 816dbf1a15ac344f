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
    rest_changes = np.bitwise_or.reduceat(rest, starts) != 0
    has_alpha = (any_flag & ALPHA) != 0
    has_digit = (any_flag & DIGIT) != 0
    is_lower = ((any_flag & (UPPER | TITLE)) == 0) & ((any_flag & LOWER) != 0)
    is_upper = ((any_flag & (LOWER | TITLE)) == 0) & ((any_flag & UPPER) != 0)
    is_title = ((flags[starts] & UPPER) != 0) & ~rest_changes
    out = np.select([~has_alpha & has_digit, ~has_alpha, has_digit, is_lower, is_upper, is_title],
                    [5, 7, 6, 1, 3, 2], 4)
    return out.astype(np.int32)
