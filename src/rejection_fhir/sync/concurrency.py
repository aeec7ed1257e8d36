"""Requests in flight for the single-request write modes: a window that adapts (AIMD).

On servers without transactions (:mod:`rejection_fhir.sync.executors`: conditional,
search-then-create, put, ledger-only) every resource is its own request, so one request
at a time leaves the server idle while the answer travels.  The executor keeps several
responses' writes going at once, each response's own writes still one after another (a
Provenance names what the earlier writes created).  How many requests may be in flight is
an :class:`AimdWindow`, as TCP does it:

- *additive increase*: each request that succeeds adds ``1 / limit`` to the limit, so a
  whole window of successes adds one, up to the ``cap``;
- *multiplicative decrease*: a 429 halves the limit (not below one).  The requests that
  were already in flight when it halved answer from the same overload: their 429s do not
  halve it again (each request carries the window's generation from when it was sent).

The retry after a 429 waits the server's ``Retry-After`` where the error carries it, else
the client's backoff; 429 means the server did not act, so sending again is safe for any
method, a plain POST included.

The window bounds requests, not threads: a response's chain holds a thread while it waits
for a slot.  Nothing here knows about the ledger; the executor returns results in plan
order, so the run records a response only when all its writes committed and the cursor
never passes an unfinished one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

#: Requests in flight at most, by default: requests keeps ten connections per host.
DEFAULT_IN_FLIGHT = 8


@dataclass(frozen=True)
class Slot:
    """One request's place in the window: the generation it was sent in."""

    generation: int


class AimdWindow:
    """A thread-safe, adaptive bound on requests in flight (see the module docstring)."""

    def __init__(self, cap: int = DEFAULT_IN_FLIGHT, *, start: int | None = None) -> None:
        self.cap = max(1, cap)
        self._limit = float(min(self.cap, max(1, start if start is not None else self.cap)))
        self._in_flight = 0
        self._generation = 0
        self._cond = threading.Condition()
        #: Most requests in flight at once, and how often the limit was halved.
        self.peak = 0
        self.decreases = 0

    @property
    def limit(self) -> int:
        """Requests allowed in flight now."""
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def acquire(self) -> Slot:
        """Wait for a place in the window."""
        with self._cond:
            while self._in_flight >= int(self._limit):
                self._cond.wait()
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
            return Slot(self._generation)

    def succeeded(self, slot: Slot) -> None:
        """The request got its answer: grow by 1/limit (one per window of successes)."""
        with self._cond:
            self._in_flight -= 1
            self._limit = min(float(self.cap), self._limit + 1.0 / self._limit)
            self._wake()

    def throttled(self, slot: Slot) -> None:
        """The server answered 429: halve, once per generation of requests."""
        with self._cond:
            self._in_flight -= 1
            if slot.generation == self._generation:
                self._limit = max(1.0, self._limit / 2)
                self._generation += 1
                self.decreases += 1
            self._wake()

    def failed(self, slot: Slot) -> None:
        """Another failure: the place is free, the limit unchanged."""
        with self._cond:
            self._in_flight -= 1
            self._wake()

    def _wake(self) -> None:
        """Wake as many waiting senders as there are free places (with the lock held):
        waking them all would have most of them find the window full again, a stampede
        on the GIL that slowed the run."""
        free = int(self._limit) - self._in_flight
        if free > 0:
            self._cond.notify(free)
