"""Shared test set-up: the numerical core initialised once, as every model does before its first kernel call."""

from __future__ import annotations

import pytest

from winner.core import runtime


@pytest.fixture(scope="session", autouse=True)
def core_ready() -> None:
    """Tests call kernels directly too, so the core's one initialisation runs before any of them."""
    runtime.init()
