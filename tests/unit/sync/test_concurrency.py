"""The AIMD window of the single-request write modes: halves on 429 (once per generation
of requests), grows by one per window of successes, never above its cap, never below one."""

from __future__ import annotations

import threading

from rejection_fhir.sync.concurrency import AimdWindow


def test_starts_at_the_cap_and_never_exceeds_it() -> None:
    window = AimdWindow(4)
    assert window.limit == 4
    for _ in range(100):
        window.succeeded(window.acquire())
    assert window.limit == 4


def test_a_429_halves_the_limit_and_never_below_one() -> None:
    window = AimdWindow(8)
    window.throttled(window.acquire())
    assert window.limit == 4
    window.throttled(window.acquire())
    window.throttled(window.acquire())
    assert window.limit == 1
    window.throttled(window.acquire())
    assert window.limit == 1 and window.decreases == 4


def test_429s_of_requests_sent_together_halve_once() -> None:
    window = AimdWindow(8)
    slots = [window.acquire() for _ in range(8)]
    for slot in slots:  # one overload, eight answers saying so
        window.throttled(slot)
    assert window.limit == 4 and window.decreases == 1
    window.throttled(window.acquire())  # a request sent after the halving: halves again
    assert window.limit == 2


def test_grows_back_by_one_per_window_of_successes() -> None:
    window = AimdWindow(8, start=2)
    assert window.limit == 2
    window.succeeded(window.acquire())
    window.succeeded(window.acquire())
    assert window.limit == 2  # 2 + 1/2 = 2.5
    for _ in range(3):
        window.succeeded(window.acquire())
    assert window.limit == 3
    for _ in range(100):
        window.succeeded(window.acquire())
    assert window.limit == 8


def test_acquire_waits_while_the_window_is_full() -> None:
    window = AimdWindow(2)
    first, second = window.acquire(), window.acquire()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(window.acquire().generation))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and not got  # a third request waits for a place
    window.succeeded(first)
    waiter.join(5)
    assert got == [0] and window.in_flight == 2 and window.peak == 2
    window.failed(second)
    assert window.in_flight == 1 and window.limit == 2  # a failure frees, does not shrink
