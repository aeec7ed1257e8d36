"""Fixtures for the FHIR client tests: a mocked transport and a sleep that only records."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses

from rejection_fhir.fhir.client import FhirClient

BASE = "https://fhir.test/fhir"
TOKEN = "tok-SECRET-4f9a1c"


def outcome(*issues: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


class Sleeps(list[float]):
    """Stands in for time.sleep: records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make(sleeps: Sleeps) -> Callable[..., FhirClient]:
    def factory(**kwargs: Any) -> FhirClient:
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("rng", random.Random(7))
        return FhirClient(kwargs.pop("base", BASE), **kwargs)

    return factory


@pytest.fixture
def client(make: Callable[..., FhirClient]) -> FhirClient:
    return make()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
