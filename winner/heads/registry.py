"""The heads winner knows, in one place. `winner run` builds each head's train step from this list and
`winner gradcheck` checks each head's own parameters beside the core's: a new head is one module in heads/,
one line here and its commands in cli/.

A head module defines its training entry point (settings -> summary dict, training through
winner.core.loop.fit) and, if it adds parameters or a loss to the core, `gradcheck_cases()`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from winner.core.rundir import training_run_dir
from winner.heads.settings import LMSettings, NERSettings, ScoreSettings, Settings


@dataclass(frozen=True)
class Head:
    """One head: its command name, the kind its model files declare, its settings and its module."""

    name: str  # `winner NAME ...` and the pipeline step `NAME train`
    kind: str  # config.json's format is winner.KIND.v1
    settings: type[Settings]
    module: str  # imported only when used, so `winner --help` stays fast
    train_function: str
    has_own_gradients: bool  # defines gradcheck_cases(): parameters or a loss beyond the core's cases
    train_help: str  # the help of `winner NAME train`

    def train(self, settings: Settings) -> dict:
        """Train through the core's loop, write the run's model card (OUT/README.md), return the run's summary.
        The run directory is checked (and locked against a second training) first, so that a refusal comes
        before minutes of loading data."""
        with training_run_dir(settings.out, settings.resume, settings.overwrite):
            fn: Callable[[Settings], dict] = getattr(importlib.import_module(self.module), self.train_function)
            summary = fn(settings)
            if (Path(settings.out) / "model" / "config.json").is_file():
                importlib.import_module("winner.heads.card").write_model_card(self.name, settings, summary)
            return summary


HEADS = (
    Head("ner", "tagger", NERSettings, "winner.heads.ner", "train_tagger", has_own_gradients=True,
         train_help="Train a window NER tagger; the best model on dev is kept in OUT/model."),
    Head("score", "scorer", ScoreSettings, "winner.heads.scorer", "train_scorer", has_own_gradients=True,
         train_help="Train a max-margin window scorer; the best model on dev (with its F1-maximising threshold) "
                    "goes to OUT/model."),
    Head("lm", "lm", LMSettings, "winner.heads.lm", "train_lm", has_own_gradients=True,
         train_help="Train the LM; one line per epoch (train loss, valid perplexity, tokens/s); the best model "
                    "on valid perplexity is kept in OUT/model."),
)


def head(name: str) -> Head:
    """The head called `name` (ner, score, lm)."""
    return next(h for h in HEADS if h.name == name)


def gradcheck_cases() -> list:
    """The core's float64 finite-difference cases and every head's own (list of core.gradcheck.CaseReport)."""
    from winner.core.gradcheck import core_cases  # numba: only when a check runs

    reports = core_cases()
    for head in HEADS:
        if head.has_own_gradients:
            reports.extend(importlib.import_module(head.module).gradcheck_cases())
    return reports
