"""The retry policy on its own: what the client's loop is told after each failure."""

from __future__ import annotations

import random

from rejection_fhir.fhir.retry import Attempts, RetryPolicy, is_retry_safe, version_checked


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def attempts(policy: RetryPolicy, clock: Clock) -> Attempts:
    return Attempts(policy, clock=clock, rng=random.Random(7))


def test_a_request_that_may_have_been_applied_is_never_retried() -> None:
    a = attempts(RetryPolicy(), Clock())
    a.begin()
    assert a.after_failure(may_retry=False, retry_after=None) == ("unsafe", 0.0)


def test_retry_after_replaces_the_backoff_and_retries_run_out() -> None:
    clock = Clock()
    a = attempts(RetryPolicy(retries=2, budget=100), clock)
    a.begin()
    assert a.after_failure(may_retry=True, retry_after=3.0) == ("retry", 3.0)
    a.begin()
    verdict, delay = a.after_failure(may_retry=True, retry_after=None)
    assert verdict == "retry" and 0.5 <= delay <= 1.0  # base 0.5 * 2, equal jitter
    a.begin()
    assert a.after_failure(may_retry=True, retry_after=None) == ("exhausted", 0.0)


def test_no_retry_whose_wait_would_end_past_the_budget() -> None:
    clock = Clock()
    a = attempts(RetryPolicy(retries=5, budget=10), clock)
    a.begin()
    clock.now = 8.0
    assert a.after_failure(may_retry=True, retry_after=3.0) == ("over-budget", 3.0)
    assert a.after_failure(may_retry=True, retry_after=2.0) == ("retry", 2.0)


def test_bundles_are_safe_only_when_every_entry_is() -> None:
    def bundle(*requests: dict) -> dict:
        return {"resourceType": "Bundle", "entry": [{"request": r} for r in requests]}

    safe = bundle(
        {"method": "PUT", "url": "Patient/1"},
        {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=x|1"},
    )
    assert is_retry_safe(safe) and not version_checked(safe)
    assert not is_retry_safe(bundle({"method": "POST", "url": "Observation"}))
    assert version_checked(bundle({"method": "PUT", "url": "Patient/1", "ifMatch": 'W/"2"'}))
