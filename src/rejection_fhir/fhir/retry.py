"""The retry policy: which failures may be retried, how long to wait, when to give up.

Our rules, kept whatever loop runs them:

* only a request that cannot apply anything twice is retried (GET, HEAD, PUT, DELETE,
  conditional create, and Bundles made only of those: :func:`is_retry_safe`); a
  non-idempotent POST whose answer may have been lost is never sent again;
* a connect timeout is retried for every method (nothing reached the server);
* 408, 429, 500, 502, 503 and 504 are retried; a 409 only for conditional writes without
  If-Match (the caller says so);
* the server's ``Retry-After`` (seconds or an HTTP-date) replaces our backoff;
* exponential backoff with equal jitter, at most ``retries`` retries, and no retry whose
  wait would end past the ``budget`` since the first attempt.

:class:`Attempts` is the per-request state the client's loop asks after each failure.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

#: Statuses that mean "try again later"; see :class:`RetryPolicy`.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.  ``retries`` counts the attempts after the first one.

    The wait before retry *n* (1-based) is ``base * 2**(n-1)`` capped at ``max_delay``,
    with "equal jitter" (half fixed, half random) so that parallel runs spread out.  A
    ``Retry-After`` from the server replaces that wait.  ``budget`` caps the whole affair:
    a retry whose wait would end more than ``budget`` seconds after the first attempt
    started is not made.
    """

    retries: int = 4
    base: float = 0.5
    max_delay: float = 30.0
    budget: float = 120.0
    statuses: frozenset[int] = RETRYABLE_STATUSES

    def backoff(self, retry: int, rng: random.Random) -> float:
        delay = min(self.max_delay, self.base * (2 ** (retry - 1)))
        return float(delay / 2 + rng.uniform(0, delay / 2))


def is_retry_safe(bundle: Mapping[str, Any]) -> bool:
    """True if posting *bundle* twice cannot apply anything twice.

    Safe entries: GET/HEAD (reads), PUT (update or conditional update), DELETE and POST
    with ``ifNoneExist`` (conditional create).  A plain POST, PATCH or a POSTed operation
    is not.  An empty Bundle is trivially safe.
    """
    entries = bundle.get("entry") or []
    for entry in entries:
        request = entry.get("request") if isinstance(entry, Mapping) else None
        if not isinstance(request, Mapping):
            return False
        method = str(request.get("method", "")).upper()
        if method in ("GET", "HEAD", "PUT", "DELETE"):
            continue
        if method == "POST" and request.get("ifNoneExist"):
            continue
        return False
    return True


def version_checked(bundle: Mapping[str, Any]) -> bool:
    """True if any entry is conditional on a version (If-Match)."""
    return any(
        isinstance(entry, Mapping)
        and isinstance(entry.get("request"), Mapping)
        and entry["request"].get("ifMatch")
        for entry in bundle.get("entry") or []
    )


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # str.isdigit() also passes "²" and "٣"
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT by definition
        return None
    return max(0.0, when.timestamp() - now)


Verdict = Literal["retry", "unsafe", "exhausted", "over-budget"]


class Attempts:
    """One request's attempts under a :class:`RetryPolicy`: counts them from the first,
    and after each failure says whether (and after how long) to try again."""

    def __init__(
        self, policy: RetryPolicy, *, clock: Callable[[], float], rng: random.Random
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._rng = rng
        self.started = clock()
        self.count = 0

    def begin(self) -> None:
        self.count += 1

    def elapsed(self) -> float:
        return self._clock() - self.started

    def after_failure(self, *, may_retry: bool, retry_after: float | None) -> tuple[Verdict, float]:
        """("retry", seconds to wait) or why not: "unsafe" (the request may already have
        been applied), "exhausted" (no retries left), "over-budget" (with the wait that
        would have been needed)."""
        if not may_retry:
            return "unsafe", 0.0
        if self.count > self.policy.retries:
            return "exhausted", 0.0
        delay = (
            retry_after if retry_after is not None else self.policy.backoff(self.count, self._rng)
        )
        if self.elapsed() + delay > self.policy.budget:
            return "over-budget", delay
        return "retry", delay
