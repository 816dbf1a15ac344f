"""Raw text to tokens for tagging and scoring."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"\w+(?:[-'.]\w+)*|[^\w\s]")


def tokenize(line: str) -> list[str]:
    """Split raw text into CoNLL-like tokens: words (with inner hyphens/apostrophes) and punctuation marks."""
    return _TOKEN.findall(line)
