"""What a sync counts and the problems it names, per response (the run's report holds them)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    fetched: int = 0
    written: int = 0
    unchanged: int = 0
    rejected: int = 0
    failed: int = 0
    skipped: int = 0
    resources: int = 0
    #: Writes whose answer was lost in ledger-only mode (see ``sync --reconcile``).
    uncertain: int = 0
    #: Resources not written because the server does not take them, by type.
    left_out: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Problem:
    response: str
    message: str
    findings: tuple[dict[str, Any], ...] = ()
