"""The heads winner knows, in one place: what `winner gradcheck` checks beyond the core.

Each head module defines `gradcheck_cases() -> list[CaseReport]` for the parameters it adds to the core.
"""

from __future__ import annotations

from winner.core.gradcheck import CaseReport, core_cases
from winner.heads import lm, scorer

HEAD_MODULES = (scorer, lm)


def gradcheck_cases() -> list[CaseReport]:
    """The core's cases and every head's."""
    reports = core_cases()
    for module in HEAD_MODULES:
        reports.extend(module.gradcheck_cases())
    return reports
