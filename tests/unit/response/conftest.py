"""Fixtures: the kitchen-sink Questionnaire (every R4 answer type and structure) and a
complete, valid response to it.  Tests get a fresh copy of the response to break."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
#: A fixed "now" after the response was authored and inside the effective period.
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return result


_QUESTIONNAIRE = load("kitchen-sink.questionnaire.json")
_RESPONSE = load("kitchen-sink.response.json")


@pytest.fixture
def questionnaire() -> dict[str, Any]:
    # Shared (not copied) on purpose: compiled Questionnaires are cached per object, as in
    # a sync run.  Tests that change a Questionnaire must copy it first.
    return _QUESTIONNAIRE


@pytest.fixture
def response() -> dict[str, Any]:
    return copy.deepcopy(_RESPONSE)


@pytest.fixture
def now() -> datetime:
    return NOW
