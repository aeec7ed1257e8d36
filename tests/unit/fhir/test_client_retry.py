"""Retries: only where repeating cannot apply a change twice; waits as the server asks."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests
import responses

from rejection_fhir.errors import ExitCode, FhirServerError, ServerUnavailableError
from rejection_fhir.fhir.client import (
    FhirClient,
    RetryPolicy,
    is_retry_safe,
    parse_retry_after,
)
from tests.unit.fhir.conftest import BASE, Sleeps, outcome

Q = {"resourceType": "Questionnaire", "id": "q1", "status": "draft"}


def conditional_bundle() -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Questionnaire", "url": "http://x/a"},
                "request": {
                    "method": "POST",
                    "url": "Questionnaire",
                    "ifNoneExist": "url=http://x/a",
                },
            },
            {
                "fullUrl": "urn:uuid:2",
                "resource": {"resourceType": "Questionnaire", "id": "b"},
                "request": {"method": "PUT", "url": "Questionnaire/b"},
            },
        ],
    }


def transaction_response(n: int) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": "201 Created", "location": f"Questionnaire/{i}/_history/1"}}
            for i in range(n)
        ],
    }


def test_429_waits_exactly_the_retry_after_seconds(
    client: FhirClient, rsps, sleeps: Sleeps
) -> None:
    rsps.get(f"{BASE}/Questionnaire/q1", status=429, headers={"Retry-After": "7"})
    rsps.get(f"{BASE}/Questionnaire/q1", json=Q)
    assert client.read("Questionnaire", "q1") == Q
    assert sleeps == [7.0]
    assert len(rsps.calls) == 2


def test_retry_after_as_an_http_date(make, rsps, sleeps: Sleeps) -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    client = make(wall_clock=now.timestamp)
    later = format_datetime(datetime(2026, 3, 1, 12, 0, 42, tzinfo=UTC), usegmt=True)
    rsps.get(f"{BASE}/Questionnaire/q1", status=503, headers={"Retry-After": later})
    rsps.get(f"{BASE}/Questionnaire/q1", json=Q)
    client.read("Questionnaire", "q1")
    assert sleeps == [42.0]


def test_5xx_then_success_on_get_is_retried(client: FhirClient, rsps, sleeps: Sleeps) -> None:
    rsps.get(f"{BASE}/Questionnaire/q1", status=502)
    rsps.get(f"{BASE}/Questionnaire/q1", status=500)
    rsps.get(f"{BASE}/Questionnaire/q1", json=Q)
    assert client.read("Questionnaire", "q1") == Q
    assert len(rsps.calls) == 3
    assert len(sleeps) == 2


def test_5xx_then_success_on_all_conditional_transaction_is_retried(
    client: FhirClient, rsps, sleeps: Sleeps
) -> None:
    rsps.post(BASE, status=503)
    rsps.post(BASE, json=transaction_response(2))
    result = client.transaction(conditional_bundle())
    assert [entry.status for entry in result] == [201, 201]
    assert len(rsps.calls) == 2
    assert len(sleeps) == 1
    assert rsps.calls[0].request.body == rsps.calls[1].request.body


def test_plain_post_create_is_not_retried(client: FhirClient, rsps, sleeps: Sleeps) -> None:
    rsps.post(
        f"{BASE}/Questionnaire",
        status=503,
        json=outcome({"severity": "error", "code": "transient", "diagnostics": "database busy"}),
    )
    with pytest.raises(ServerUnavailableError) as caught:
        client.create({"resourceType": "Questionnaire"})
    error = caught.value
    assert len(rsps.calls) == 1
    assert sleeps == []
    assert error.exit_code == ExitCode.SERVER_UNAVAILABLE
    assert error.status == 503
    assert "unsafe to retry" in str(error)
    assert "database busy" in str(error)


def test_cut_off_json_on_a_get_is_retried(client: FhirClient, rsps, sleeps: Sleeps) -> None:
    """A 200 whose JSON stops short lost its answer on the way (a proxy cut it): ask again."""
    cut = '{"resourceType": "Questionnaire", "id": "q1", "sta'
    rsps.get(f"{BASE}/Questionnaire/q1", body=cut, content_type="application/fhir+json")
    rsps.get(f"{BASE}/Questionnaire/q1", json=Q)
    assert client.read("Questionnaire", "q1") == Q
    assert len(rsps.calls) == 2 and len(sleeps) == 1


def test_cut_off_json_on_a_conditional_transaction_is_retried(
    client: FhirClient, rsps, sleeps: Sleeps
) -> None:
    whole = json.dumps(transaction_response(2))
    rsps.post(BASE, body=whole[: len(whole) // 2], content_type="application/fhir+json")
    rsps.post(BASE, json=transaction_response(2))
    result = client.transaction(conditional_bundle())
    assert [entry.status for entry in result] == [201, 201]
    assert len(rsps.calls) == 2


def test_cut_off_json_on_a_plain_post_is_not_retried(client: FhirClient, rsps, sleeps) -> None:
    """The server created it (201) but the answer was cut: a retry would create a second."""
    rsps.post(
        f"{BASE}/Questionnaire",
        status=201,
        body='{"resourceType": "Questionnaire", "id": "n',
        content_type="application/fhir+json",
    )
    with pytest.raises(ServerUnavailableError) as caught:
        client.create({"resourceType": "Questionnaire"})
    assert len(rsps.calls) == 1 and sleeps == []
    assert "not valid JSON" in str(caught.value)
    assert "may already have applied it" in str(caught.value)
    assert caught.value.exit_code == ExitCode.SERVER_UNAVAILABLE


RACE = outcome(
    {
        "severity": "error",
        "code": "processing",
        "diagnostics": "HAPI-2745: The operation has failed with a conditional constraint failure",
    }
)


def test_conflict_on_an_all_conditional_transaction_is_retried(
    client: FhirClient, rsps, sleeps: Sleeps
) -> None:
    """Our own earlier attempt, still running when the timeout gave up on it, won the race
    for the conditional creates (HAPI answers 409); asking again finds what it wrote."""
    rsps.post(BASE, status=409, json=RACE)
    rsps.post(BASE, json=transaction_response(2))
    result = client.transaction(conditional_bundle())
    assert [entry.status for entry in result] == [201, 201]
    assert len(rsps.calls) == 2 and len(sleeps) == 1


def test_conflict_on_a_transaction_with_if_match_is_not_retried(client: FhirClient, rsps, sleeps):
    """With If-Match, a 409 may be a stale version: asking again cannot help."""
    bundle = conditional_bundle()
    bundle["entry"][1]["request"]["ifMatch"] = 'W/"3"'
    rsps.post(BASE, status=409, json=RACE)
    with pytest.raises(FhirServerError) as caught:
        client.transaction(bundle)
    assert not isinstance(caught.value, ServerUnavailableError)
    assert caught.value.status == 409 and len(rsps.calls) == 1 and sleeps == []


def test_conflict_on_a_conditional_create_is_retried_and_a_lasting_one_reported(
    make, rsps, sleeps
) -> None:
    client = make(retry=RetryPolicy(retries=1))
    rsps.post(f"{BASE}/Questionnaire", status=409, json=RACE)
    with pytest.raises(ServerUnavailableError) as caught:
        client.conditional_create({"resourceType": "Questionnaire"}, {"url": "http://x/a"})
    assert len(rsps.calls) == 2
    assert "gave up after 2 attempts" in str(caught.value)
    assert "same time" in str(caught.value)


def test_conflict_on_a_plain_update_is_not_retried(client: FhirClient, rsps, sleeps) -> None:
    rsps.put(f"{BASE}/Questionnaire/q1", status=409, json=RACE)
    with pytest.raises(FhirServerError):
        client.update(Q)
    assert len(rsps.calls) == 1


def test_transaction_with_a_plain_post_entry_is_not_retried(
    client: FhirClient, rsps, sleeps
) -> None:
    bundle = conditional_bundle()
    bundle["entry"].append(
        {
            "resource": {"resourceType": "Observation"},
            "request": {"method": "POST", "url": "Observation"},
        }
    )
    rsps.post(BASE, status=500)
    with pytest.raises(ServerUnavailableError, match="unsafe to retry"):
        client.transaction(bundle)
    assert len(rsps.calls) == 1
    assert sleeps == []


def test_post_operation_is_retried_only_when_declared_idempotent(
    client: FhirClient, rsps, sleeps
) -> None:
    rsps.post(f"{BASE}/Questionnaire/$validate", status=503)
    with pytest.raises(ServerUnavailableError, match="unsafe to retry"):
        client.operation("$validate", resource_type="Questionnaire", body=Q)
    assert sleeps == []
    rsps.post(f"{BASE}/Questionnaire/$validate", status=503)
    rsps.post(
        f"{BASE}/Questionnaire/$validate",
        json=outcome({"severity": "information", "code": "informational"}),
    )
    answer = client.operation("$validate", resource_type="Questionnaire", body=Q, idempotent=True)
    assert answer is not None and answer["resourceType"] == "OperationOutcome"
    assert len(sleeps) == 1
    assert len(rsps.calls) == 3


@pytest.mark.parametrize(
    "exc",
    [requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError],
    ids=["read-timeout", "dropped"],
)
def test_transport_failure_on_get_is_retried_then_reported(make, rsps, sleeps: Sleeps, exc) -> None:
    client = make(retry=RetryPolicy(retries=2))
    rsps.get(f"{BASE}/Questionnaire/q1", body=exc("boom https://fhir.test/fhir/Questionnaire/q1"))
    with pytest.raises(ServerUnavailableError) as caught:
        client.read("Questionnaire", "q1")
    assert len(rsps.calls) == 3
    assert len(sleeps) == 2
    text = str(caught.value)
    assert "GET Questionnaire/q1 failed" in text
    assert "gave up after 3 attempts" in text
    assert caught.value.status is None
    if exc is requests.exceptions.ReadTimeout:
        assert "no answer within 60 s (read timeout)" in text


def test_read_timeout_then_success(client: FhirClient, rsps, sleeps) -> None:
    rsps.get(f"{BASE}/Questionnaire/q1", body=requests.exceptions.ReadTimeout())
    rsps.get(f"{BASE}/Questionnaire/q1", json=Q)
    assert client.read("Questionnaire", "q1") == Q
    assert len(sleeps) == 1


def test_connect_timeout_is_retried_even_for_a_plain_post(client: FhirClient, rsps, sleeps) -> None:
    # The connection never opened, so the server cannot have created anything.
    rsps.post(f"{BASE}/Questionnaire", body=requests.exceptions.ConnectTimeout())
    rsps.post(
        f"{BASE}/Questionnaire",
        status=201,
        headers={"Location": f"{BASE}/Questionnaire/9/_history/1"},
    )
    result = client.create({"resourceType": "Questionnaire"})
    assert result.id == "9"
    assert len(sleeps) == 1


def test_read_timeout_on_a_plain_post_is_not_retried(client: FhirClient, rsps, sleeps) -> None:
    rsps.post(f"{BASE}/Questionnaire", body=requests.exceptions.ReadTimeout())
    with pytest.raises(ServerUnavailableError) as caught:
        client.create({"resourceType": "Questionnaire"})
    assert "read timeout" in str(caught.value)
    assert "unsafe to retry a POST" in str(caught.value)
    assert sleeps == []


def test_connect_timeouts_outlasting_the_retries(make, rsps, sleeps) -> None:
    client = make(retry=RetryPolicy(retries=1))
    rsps.get(f"{BASE}/metadata", body=requests.exceptions.ConnectTimeout())
    with pytest.raises(ServerUnavailableError, match="could not connect within 10 s"):
        client.capabilities()
    assert len(rsps.calls) == 2


def test_exhausted_retries_keep_the_last_outcome(make, rsps, sleeps) -> None:
    client = make(retry=RetryPolicy(retries=1))
    rsps.get(
        f"{BASE}/Questionnaire/q1",
        status=503,
        json=outcome({"severity": "fatal", "code": "transient", "diagnostics": "maintenance"}),
    )
    with pytest.raises(ServerUnavailableError) as caught:
        client.read("Questionnaire", "q1")
    assert caught.value.status == 503
    assert "fatal [transient]: maintenance" in str(caught.value)
    assert "gave up after 2 attempts" in str(caught.value)


def test_retry_after_beyond_the_budget_gives_up_without_waiting(make, rsps, sleeps) -> None:
    client = make(retry=RetryPolicy(budget=60))
    rsps.get(f"{BASE}/Questionnaire/q1", status=429, headers={"Retry-After": "3600"})
    with pytest.raises(ServerUnavailableError) as caught:
        client.read("Questionnaire", "q1")
    assert sleeps == []
    assert "past the 60 s retry budget" in str(caught.value)


def test_budget_counts_time_already_spent(make, rsps, sleeps) -> None:
    ticks = iter([0.0, 0.0, 50.0, 50.0])  # start, sent, answered, budget check
    client = make(retry=RetryPolicy(budget=55, base=10), clock=lambda: next(ticks, 50.0))
    rsps.get(f"{BASE}/Questionnaire/q1", status=503)
    with pytest.raises(ServerUnavailableError, match="retry budget"):
        client.read("Questionnaire", "q1")
    assert sleeps == []


def test_backoff_grows_exponentially_with_bounded_jitter(make, rsps, sleeps) -> None:
    client = make(retry=RetryPolicy(retries=4, base=1.0, max_delay=5.0), rng=random.Random(3))
    rsps.get(f"{BASE}/Questionnaire/q1", status=500)
    with pytest.raises(ServerUnavailableError):
        client.read("Questionnaire", "q1")
    assert len(sleeps) == 4
    for delay, full in zip(sleeps, [1.0, 2.0, 4.0, 5.0], strict=True):
        assert full / 2 <= delay <= full
    assert len(set(sleeps)) == 4


@pytest.mark.parametrize(
    ("entries", "safe"),
    [
        ([], True),
        ([{"request": {"method": "PUT", "url": "Questionnaire/a"}}], True),
        ([{"request": {"method": "PUT", "url": "Questionnaire?url=x"}}], True),
        ([{"request": {"method": "DELETE", "url": "Questionnaire?url=x"}}], True),
        ([{"request": {"method": "GET", "url": "Questionnaire/a"}}], True),
        ([{"request": {"method": "POST", "url": "Questionnaire", "ifNoneExist": "url=x"}}], True),
        ([{"request": {"method": "POST", "url": "Questionnaire"}}], False),
        ([{"request": {"method": "POST", "url": "Questionnaire", "ifNoneExist": ""}}], False),
        ([{"request": {"method": "PATCH", "url": "Questionnaire/a"}}], False),
        ([{"resource": {"resourceType": "Questionnaire"}}], False),
    ],
)
def test_is_retry_safe(entries, safe) -> None:
    assert (
        is_retry_safe({"resourceType": "Bundle", "type": "transaction", "entry": entries}) is safe
    )


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_retried_requests_keep_their_timeouts(client: FhirClient, rsps) -> None:
    seen = []

    def capture(request):
        seen.append(request.req_kwargs["timeout"])
        return (503, {}, "") if len(seen) == 1 else (200, {}, '{"resourceType": "Questionnaire"}')

    rsps.add_callback(responses.GET, f"{BASE}/Questionnaire/q1", callback=capture)
    client.read("Questionnaire", "q1")
    assert seen == [(10.0, 60.0), (10.0, 60.0)]
