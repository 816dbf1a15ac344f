"""winner: window-based neural NLP from first principles.

One numba-compiled MLP core with hand-written backprop (into the word embeddings too) and three
heads on it: a softmax NER tagger, a max-margin window scorer and a fixed-window neural language model.

    import winner
    nlp = winner.load("runs/conll")                 # NER, WindowScorer or LM, by the model's head
    doc = nlp("John Smith flew to Paris.")
    [(e.text, e.label, e.start_char, e.end_char) for e in doc.ents]

The names below are imported on first use, so `import winner` loads neither numba nor a model.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it (relative, so that modules importing __version__ make no cycle)
_LAZY = {
    "load": ".heads.api", "train": ".heads.api", "NER": ".heads.api", "WindowScorer": ".heads.api",
    "LM": ".heads.api", "Doc": ".heads.docs", "Entity": ".heads.docs", "Token": ".data.text",
    "tokenize": ".data.text", "NERSettings": ".heads.settings", "ScoreSettings": ".heads.settings",
    "LMSettings": ".heads.settings", "WinnerError": ".errors",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'winner' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
