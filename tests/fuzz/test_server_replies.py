"""The FHIR client and the SMART token client against mutated server replies (``responses``:
no sockets): statuses, content types, headers and bodies as broken or hostile servers send
them.  Every call returns or raises one RejectionFhirError whose text is bounded and never
holds the token or, for requests carrying clients' answers, the server's diagnostics."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import pytest
import responses

from rejection_fhir.errors import RejectionFhirError
from rejection_fhir.fhir.auth import BearerAuth, Secret
from rejection_fhir.fhir.client import EntryResult, FhirClient, RetryPolicy, TransactionResult
from rejection_fhir.fhir.smart import SmartBackendAuth, generate_key_pair
from tests.fuzz.conftest import count, rng_for, tag
from tests.fuzz.mutator import ODD_TEXT, Mutator, dumps

BASE = "https://fhir.fuzz/fhir"
TOKEN = "tok-FUZZ-SECRET-93b1"
ANSWER = "CLIENT-ANSWER-d41c"  # stands for a client's words echoed in diagnostics
REPLY_CASES = 4000
TOKEN_CASES = 300

STATUSES = [200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 409, 410, 412, 422, 429, 500, 503]
CONTENT_TYPES = [
    "application/fhir+json",
    "application/fhir+json; charset=utf-8",
    "application/json",
    "text/html",
    "application/fhir+xml",
    "text/plain",
    "",
    "application/octet-stream",
]
ODD_HEADERS = [
    "",
    "-1",
    "²",
    "٣",
    "1e9",
    "99999999999",
    "Wed, 99 Foo 2026",
    'W/"',
    "../../x",
    "\x7f",
]

OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "invalid",
            "diagnostics": f"value '{ANSWER}' is not valid",
            "details": {"text": f"rejected {ANSWER}"},
            "expression": ["QuestionnaireResponse.item[0].answer[0]"],
        }
    ],
}
PATIENT = {"resourceType": "Patient", "id": "1", "meta": {"versionId": "2"}}
SEARCHSET = {
    "resourceType": "Bundle",
    "type": "searchset",
    "link": [{"relation": "next", "url": f"{BASE}/QuestionnaireResponse?page=2"}],
    "entry": [
        {
            "resource": {"resourceType": "QuestionnaireResponse", "id": "a"},
            "search": {"mode": "match"},
        }
    ],
}
TX_RESPONSE = {
    "resourceType": "Bundle",
    "type": "transaction-response",
    "entry": [
        {
            "response": {
                "status": "201 Created",
                "location": "Observation/9/_history/1",
                "etag": 'W/"1"',
            }
        },
        {"response": {"status": "200 OK", "outcome": OUTCOME}},
    ],
}
CAPABILITY = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "status": "active"}
TX_REQUEST = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "resource": {"resourceType": "Observation"},
            "request": {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=x|1"},
        },
        {
            "resource": {"resourceType": "Provenance"},
            "request": {"method": "POST", "url": "Provenance", "ifNoneExist": "identifier=x|2"},
        },
    ],
}

Call = Callable[[FhirClient], Any]
CALLS: list[tuple[str, str, str, dict[str, Any], Call, bool]] = [
    # (name, method, url, base reply, the call, carries clients' answers)
    ("read", "GET", f"{BASE}/Patient/1", PATIENT, lambda c: c.read("Patient", "1"), False),
    (
        "search",
        "GET",
        f"{BASE}/QuestionnaireResponse",
        SEARCHSET,
        lambda c: list(c.search("QuestionnaireResponse", {"_lastUpdated": "gt2026-01-01"})),
        False,
    ),
    (
        "transaction",
        "POST",
        BASE,
        TX_RESPONSE,
        lambda c: c.transaction(TX_REQUEST, sensitive=True),
        True,
    ),
    (
        "conditional_create",
        "POST",
        f"{BASE}/Observation",
        {"resourceType": "Observation", "id": "9"},
        lambda c: c.conditional_create(
            {"resourceType": "Observation"}, "identifier=x|1", sensitive=True
        ),
        True,
    ),
    (
        "capabilities",
        "GET",
        f"{BASE}/metadata",
        CAPABILITY,
        lambda c: c.check_fhir_version(),
        False,
    ),
    (
        "validate",
        "POST",
        f"{BASE}/QuestionnaireResponse/$validate",
        OUTCOME,
        lambda c: c.operation(
            "validate",
            resource_type="QuestionnaireResponse",
            body={"resourceType": "QuestionnaireResponse"},
            idempotent=True,
            sensitive=True,
            outcome_on_error=True,
        ),
        True,
    ),
]


def _reply(rng: random.Random, base: dict[str, Any]) -> dict[str, Any]:
    mutator = Mutator(rng, max_huge=100_000)
    roll = rng.random()
    if roll < 0.45:
        body = dumps(mutator.mutate(base))
    elif roll < 0.7:
        body = mutator.mutate_bytes(dumps(base))
    elif roll < 0.8:
        body = dumps(mutator.mutate(OUTCOME))
    else:
        body = rng.choice(
            [
                b"",
                b"<html><body>Login</body></html>",
                b"<?xml version='1.0'?><OperationOutcome/>",
                b"[" * 100_000,
                b'{"a":' * 50_000,
                b"\x00" * 64,
                b"null",
                b"x" * 2_000_000,
                ("\u202e" + ANSWER).encode(),
            ]
        )
    headers: dict[str, str] = {}
    for name in (
        "Location",
        "ETag",
        "Retry-After",
        "Content-Location",
        "Last-Modified",
        "WWW-Authenticate",
    ):
        if rng.random() < 0.25:
            headers[name] = rng.choice(
                [*ODD_HEADERS, rng.choice(ODD_TEXT)[:200].replace("\n", " ")]
            )
    return {
        "status": rng.choice(STATUSES),
        "body": body,
        "content_type": rng.choice(CONTENT_TYPES),
        "headers": {
            k: v.encode("latin-1", "replace").decode("latin-1") for k, v in headers.items()
        },
    }


def _check_error(error: RejectionFhirError, where: str, sensitive: bool) -> None:
    text = str(error)
    assert error.exit_code in (4, 5, 6, 9), f"{where} exit code {error.exit_code}"
    assert len(text) < 20_000, f"{where} message of {len(text)} chars"
    assert TOKEN not in text, f"{where} the token is in the message"
    if sensitive:
        assert ANSWER not in text, f"{where} a client's answer is in the message:\n{text[:2000]}"


def _check_entry(entry: EntryResult, where: str, sensitive: bool) -> None:
    for field in ("location", "resource_type", "id", "version_id", "etag", "last_modified"):
        value = getattr(entry, field)
        assert value is None or isinstance(value, str), f"{where} {field} = {value!r:.80}"
    described = entry.describe(withhold_diagnostics=sensitive)
    if sensitive:
        assert ANSWER not in described, f"{where} describe() shows a client's answer"


def _check_result(result: Any, where: str, sensitive: bool) -> None:
    """What a call returned is typed as documented; failures inside it raise cleanly."""
    if isinstance(result, TransactionResult):
        for entry in result:
            _check_entry(entry, where, sensitive)
        try:
            result.raise_for_failures(withhold_diagnostics=sensitive)
        except RejectionFhirError as error:
            _check_error(error, where, sensitive)
    elif isinstance(result, EntryResult):
        _check_entry(result, where, sensitive)


def test_fhir_client_on_mutated_replies(caplog: pytest.LogCaptureFixture) -> None:
    name = "client/replies"
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for case in range(REPLY_CASES):
            rng = rng_for(name, case)
            label, method, url, base, call, sensitive = rng.choice([*CALLS, CALLS[2], CALLS[3]])
            where = tag(name, f"{case}/{label}")
            mock.reset()
            for _ in range(rng.randint(1, 2)):
                mock.add(method, url, **_reply(rng, base))
            client = FhirClient(
                BASE,
                auth=BearerAuth(Secret(TOKEN)),
                retry=RetryPolicy(retries=1, budget=5.0),
                sleep=lambda seconds: None,
                rng=random.Random(case),
            )
            try:
                _check_result(call(client), where, sensitive)
            except RejectionFhirError as error:
                _check_error(error, where, sensitive)
            except ValueError as error:  # our own argument checks only, never server data
                raise AssertionError(f"{where} ValueError: {error}") from error
            finally:
                client.close()
            logged = caplog.text
            assert TOKEN not in logged, f"{where} the token was logged"
            if sensitive:
                assert ANSWER not in logged, f"{where} a client's answer was logged"
            caplog.clear()
            count(name)


TOKEN_REPLY = {
    "access_token": TOKEN,
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "system/*.rs",
}


def test_smart_token_client_on_mutated_replies(caplog: pytest.LogCaptureFixture) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    name = "smart/token-replies"
    caplog.set_level(logging.DEBUG)
    key = load_pem_private_key(generate_key_pair("ES384").private_pem, password=None)
    token_url = "https://auth.fuzz/token"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for case in range(TOKEN_CASES):
            rng = rng_for(name, case)
            where = tag(name, case)
            mock.reset()
            discover = rng.random() < 0.3
            if discover:
                config = {
                    "token_endpoint": token_url,
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                }
                mock.add("GET", f"{BASE}/.well-known/smart-configuration", **_reply(rng, config))
            mock.add("POST", token_url, **_reply(rng, TOKEN_REPLY))
            auth = SmartBackendAuth(
                "fuzz-client",
                key,  # type: ignore[arg-type]
                token_url=None if discover else token_url,
                fhir_base=BASE,
            )
            try:
                value = auth.token()
                assert isinstance(value, Secret) and value.reveal(), where
            except RejectionFhirError as error:
                _check_error(error, where, sensitive=False)
                assert "eyJ" not in str(error), f"{where} a JWT is in the message"
            logged = caplog.text
            assert TOKEN not in logged and "eyJ" not in logged, f"{where} a token was logged"
            caplog.clear()
            count(name)
