"""The hostile-user drill (scripts/hostile_drill.py) as tests: every family of bad files, broken models, bad
options and usage errors, hostile environments and bad pipelines, against every command in fresh processes of
the installed `winner`; each must end in one `error:` line with the expected exit code, or be accepted as a
valid variant, with no traceback and nothing lost. The long fault drills (signals, kill -9, full disks) are
tests/test_reliability.py's; the lock against a second training is here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("hostile_drill", ROOT / "scripts" / "hostile_drill.py")
drill = importlib.util.module_from_spec(_spec)
sys.modules["hostile_drill"] = drill
_spec.loader.exec_module(drill)

QUICK = [c for c in drill.CASES
         if c.drill in (None, drill.second_training_drill, drill.port_in_use, drill.hub_offline)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> drill.Runs:
    runs = drill.Runs(tmp_path_factory.mktemp("hostile_runs"))
    runs.build()
    return runs


def test_the_drill_covers_every_command_and_family():
    groups = ("ner", "score", "lm", "embeddings", "init")
    commands = {" ".join(c.args[:2] if c.args[0] in groups else c.args[:1]) for c in drill.CASES if c.args}
    for command in ("ner train", "ner evaluate", "ner tag", "ner explain", "score train", "score windows",
                    "score evaluate", "score explain", "lm train", "lm perplexity", "lm generate", "lm ngram",
                    "lm explain", "run", "sweep", "embeddings export", "embeddings neighbors", "serve",
                    "init config", "gradcheck", "bench"):
        assert command in commands, command
    assert len(drill.CASES) >= 60
    assert {c.family for c in drill.CASES} >= {"files", "models", "options", "environment", "pipelines", "faults"}


@pytest.mark.parametrize("case", QUICK, ids=[c.name for c in QUICK])
def test_a_hostile_input_is_one_line_or_accepted(case, runs, tmp_path):
    problem = drill.run_case(case, tmp_path / "case", runs)
    if problem and problem.startswith("skipped"):
        pytest.skip(problem)
    assert problem is None, problem
