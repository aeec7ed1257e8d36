"""Each non-2xx answer becomes one clear exception; nothing secret leaks into it."""

from __future__ import annotations

import logging

import pytest
import requests
import responses
from responses import matchers

from rejection_fhir.errors import (
    AuthError,
    ExitCode,
    FhirServerError,
    ServerUnavailableError,
)
from rejection_fhir.fhir.auth import BasicAuth, BearerAuth, Secret
from rejection_fhir.fhir.client import FhirClient, RetryPolicy
from tests.unit.fhir.conftest import BASE, TOKEN, outcome

QUESTIONNAIRE = {"resourceType": "Questionnaire", "status": "draft", "url": "http://x/q"}


def test_4xx_with_operation_outcome_names_method_path_status_and_each_issue(
    client: FhirClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        f"{BASE}/Questionnaire",
        status=422,
        json=outcome(
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "Questionnaire.item: minimum required = 1",
                "expression": ["Questionnaire.item"],
            },
            {"severity": "warning", "code": "business-rule", "diagnostics": "no publisher"},
        ),
        content_type="application/fhir+json",
    )
    with pytest.raises(FhirServerError) as caught:
        client.create(QUESTIONNAIRE)
    error = caught.value
    assert type(error) is FhirServerError
    assert error.exit_code == ExitCode.SERVER_REFUSED
    assert error.status == 422
    assert error.outcome is not None and len(error.outcome["issue"]) == 2
    text = str(error)
    assert text.splitlines()[0] == "POST Questionnaire failed: 422 Unprocessable Entity"
    assert "error [invalid] at Questionnaire.item: Questionnaire.item: minimum required = 1" in text
    assert "warning [business-rule]: no publisher" in text
    assert "validator rejected" in text  # the hint


def test_401_is_an_auth_error_with_a_credentials_hint(make, rsps: responses.RequestsMock) -> None:
    client = make(auth=BearerAuth(Secret(TOKEN)))
    rsps.get(
        f"{BASE}/Questionnaire/abc",
        status=401,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token", error_description="expired"'},
        json=outcome({"severity": "error", "code": "login", "diagnostics": "Token expired"}),
    )
    with pytest.raises(AuthError) as caught:
        client.read("Questionnaire", "abc")
    error = caught.value
    assert error.exit_code == ExitCode.AUTH
    assert error.status == 401
    assert "GET Questionnaire/abc failed: 401" in str(error)
    assert "Token expired" in str(error)
    assert error.hint is not None
    assert "invalid_token" in error.hint
    assert "RFHIR_TOKEN" in error.hint
    assert TOKEN not in str(error)


def test_401_without_credentials_says_how_to_give_them(
    client: FhirClient, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{BASE}/Questionnaire/abc", status=401)
    with pytest.raises(AuthError) as caught:
        client.read("Questionnaire", "abc")
    assert "requires authentication" in str(caught.value)
    assert "RFHIR_TOKEN_FILE" in str(caught.value)
    assert "empty body" in str(caught.value)


def test_403_is_an_auth_error_about_permission(client: FhirClient, rsps) -> None:
    rsps.put(
        f"{BASE}/Questionnaire/abc",
        status=403,
        json=outcome({"severity": "error", "code": "forbidden"}),
    )
    with pytest.raises(AuthError) as caught:
        client.update({**QUESTIONNAIRE, "id": "abc"})
    assert caught.value.status == 403
    assert "may not PUT Questionnaire/abc" in str(caught.value)


def test_404_read(client: FhirClient, rsps: responses.RequestsMock) -> None:
    rsps.get(
        f"{BASE}/Questionnaire/nope",
        status=404,
        json=outcome(
            {
                "severity": "error",
                "code": "not-found",
                "diagnostics": "Resource Questionnaire/nope is not known",
            }
        ),
    )
    with pytest.raises(FhirServerError) as caught:
        client.read("Questionnaire", "nope")
    error = caught.value
    assert type(error) is FhirServerError
    assert error.status == 404
    assert "GET Questionnaire/nope failed: 404 Not Found" in str(error)
    assert "not-found" in str(error)
    assert "/fhir" in (error.hint or "")


def test_412_conditional_create_with_several_matches_hints_at_duplicates(
    client: FhirClient, rsps: responses.RequestsMock
) -> None:
    rsps.post(
        f"{BASE}/Questionnaire",
        status=412,
        json=outcome(
            {
                "severity": "error",
                "code": "processing",
                "diagnostics": "Failed to CREATE resource with match URL because this search matched 2 resources",
            }
        ),
    )
    with pytest.raises(FhirServerError) as caught:
        client.conditional_create(QUESTIONNAIRE, {"url": "http://x/q", "version": "1.0.0"})
    error = caught.value
    assert error.status == 412
    assert "matched 2 resources" in str(error)
    assert "duplicates" in (error.hint or "")
    # a 412 is final: it is not retried
    assert len(rsps.calls) == 1


def test_html_error_page_is_named_but_not_shown(client: FhirClient, rsps) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1><p>nginx internal-host-17</p></body></html>"
    rsps.post(
        f"{BASE}/Questionnaire", status=400, body=page, content_type="text/html; charset=utf-8"
    )
    with pytest.raises(FhirServerError) as caught:
        client.create(QUESTIONNAIRE)
    text = str(caught.value)
    assert "POST Questionnaire failed: 400" in text
    assert "HTML page (text/html)" in text
    assert "internal-host-17" not in text
    assert caught.value.outcome is None


def test_html_page_with_a_200_is_not_taken_for_fhir(client: FhirClient, rsps) -> None:
    rsps.get(
        f"{BASE}/Questionnaire/abc",
        status=200,
        body="<!doctype html><title>Sign in</title>",
        content_type="text/html",
    )
    with pytest.raises(FhirServerError) as caught:
        client.read("Questionnaire", "abc")
    assert "HTML page" in str(caught.value)
    assert "Sign in" not in str(caught.value)


def test_invalid_json_on_success_says_where_it_broke(client: FhirClient, rsps) -> None:
    rsps.get(
        f"{BASE}/Questionnaire/abc",
        status=200,
        body='{"resourceType": "Questionnaire", "id": ',
        content_type="application/fhir+json",
    )
    with pytest.raises(FhirServerError) as caught:
        client.read("Questionnaire", "abc")
    text = str(caught.value)
    # A GET is retried (a cut-off answer is a lost answer), so the error says it gave up.
    assert "GET Questionnaire/abc failed: answered 200 with a body that is not valid JSON" in text
    assert "application/fhir+json" in text
    assert "line 1" in text
    assert "gave up after" in text and "truncating" in text


def test_invalid_json_on_error_is_noted(client: FhirClient, rsps) -> None:
    rsps.get(
        f"{BASE}/Questionnaire/abc", status=400, body="{oops", content_type="application/fhir+json"
    )
    with pytest.raises(FhirServerError) as caught:
        client.read("Questionnaire", "abc")
    assert "not valid JSON" in str(caught.value)


def test_json_that_is_not_a_resource(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/Questionnaire/abc", status=200, json=[1, 2])
    with pytest.raises(FhirServerError, match="not a FHIR resource"):
        client.read("Questionnaire", "abc")


def test_empty_body_where_a_resource_was_expected(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/Questionnaire/abc", status=200, body="")
    with pytest.raises(FhirServerError, match="empty body"):
        client.read("Questionnaire", "abc")


def test_query_values_never_reach_the_message_or_the_log(
    client: FhirClient, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rsps.get(f"{BASE}/Patient", status=400, json=outcome({"severity": "error", "code": "invalid"}))
    with pytest.raises(FhirServerError) as caught:
        list(client.search("Patient", {"identifier": "MRN-778899", "name": ["Doe", "Jane"]}))
    text = str(caught.value)
    assert "GET Patient?identifier=...&name=... failed: 400" in text
    for value in ("MRN-778899", "Doe", "Jane"):
        assert value not in text
        assert value not in caplog.text
    assert "GET Patient?identifier=...&name=... -> 400" in caplog.text


def test_sensitive_requests_withhold_the_servers_diagnostics(client: FhirClient, rsps) -> None:
    rsps.post(
        f"{BASE}/QuestionnaireResponse",
        status=422,
        json=outcome(
            {
                "severity": "error",
                "code": "invalid",
                "diagnostics": "answer 'nobody called me back' is not a valid code",
                "expression": ["QuestionnaireResponse.item[3].answer[0]"],
            }
        ),
    )
    with pytest.raises(FhirServerError) as caught:
        client.create(
            {"resourceType": "QuestionnaireResponse", "status": "completed"}, sensitive=True
        )
    error = caught.value
    assert "nobody called me back" not in str(error)
    assert "nobody called me back" not in repr(error.outcome)
    assert "QuestionnaireResponse.item[3].answer[0]" in str(error)


def test_tls_failure_points_at_the_ca_bundle(client: FhirClient, rsps) -> None:
    rsps.get(f"{BASE}/metadata", body=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(ServerUnavailableError) as caught:
        client.capabilities()
    assert "TLS handshake with fhir.test failed" in str(caught.value)
    assert "ca_bundle" in (caught.value.hint or "")
    assert len(rsps.calls) == 1


def test_redirect_on_a_write_is_reported_not_followed(client: FhirClient, rsps) -> None:
    rsps.post(
        f"{BASE}/Questionnaire",
        status=301,
        headers={"Location": "https://fhir.test/r4/Questionnaire"},
    )
    with pytest.raises(FhirServerError) as caught:
        client.create(QUESTIONNAIRE)
    assert "redirected to https://fhir.test/r4/Questionnaire" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "auth",
    [BearerAuth(Secret(TOKEN)), BasicAuth("svc-publisher", Secret(TOKEN))],
    ids=["bearer", "basic"],
)
def test_secret_never_in_exception_text_or_logs(
    make, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture, auth
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make(auth=auth)
    rsps.get(f"{BASE}/Questionnaire/a", status=503)
    rsps.get(
        f"{BASE}/Questionnaire/a", status=401, json=outcome({"severity": "error", "code": "login"})
    )
    rsps.get(f"{BASE}/Questionnaire/b", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(AuthError) as first:
        client.read("Questionnaire", "a")
    client.retry = type(client.retry)(retries=0)
    with pytest.raises(ServerUnavailableError) as second:
        client.read("Questionnaire", "b")
    sent = rsps.calls[0].request.headers["Authorization"]
    assert sent.startswith(("Bearer ", "Basic "))
    for error in (first.value, second.value):
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert sent not in str(error)
    assert TOKEN not in caplog.text
    assert sent not in caplog.text
    assert TOKEN not in repr(client)
    assert "retry 1/4" in caplog.text  # the log did record the retry


def test_values_in_conditional_urls_and_next_links_stay_out_of_messages(
    client: FhirClient, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rsps.put(
        f"{BASE}/Observation", status=400, json=outcome({"severity": "error", "code": "invalid"})
    )
    with pytest.raises(FhirServerError) as by_condition:
        client.conditional_update({"resourceType": "Observation"}, {"subject": "Patient/p-5521"})
    assert "PUT Observation?subject=... failed: 400" in str(by_condition.value)

    rsps.get(
        f"{BASE}/Observation",
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [
                {"relation": "next", "url": f"{BASE}/Observation?subject=Patient/p-5521&page=2"}
            ],
        },
    )
    rsps.get(
        f"{BASE}/Observation",
        status=404,
        match=[matchers.query_param_matcher({"subject": "Patient/p-5521", "page": "2"})],
    )
    with pytest.raises(FhirServerError) as by_link:
        list(client.search("Observation"))
    assert "GET Observation?subject=...&page=... failed: 404" in str(by_link.value)
    for text in (str(by_condition.value), str(by_link.value), caplog.text):
        assert "p-5521" not in text


def test_other_transport_failures_do_not_quote_the_url(client: FhirClient, rsps) -> None:
    rsps.get(
        f"{BASE}/Patient",
        body=requests.exceptions.TooManyRedirects(
            f"Exceeded 30 redirects: {BASE}/Patient?name=Jane"
        ),
    )
    with pytest.raises(FhirServerError) as caught:
        list(client.search("Patient", {"name": "Jane"}))
    assert str(caught.value).startswith("GET Patient?name=... failed: TooManyRedirects")
    assert "Jane" not in str(caught.value)
    assert len(rsps.calls) == 1


def test_a_failing_page_at_the_base_is_named_by_parameter(make, rsps) -> None:
    client = make(retry=RetryPolicy(retries=0))
    rsps.get(
        f"{BASE}/Questionnaire",
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [{"relation": "next", "url": f"{BASE}?_getpages=f00d&_getpagesoffset=20"}],
        },
    )
    rsps.get(BASE, status=500)
    with pytest.raises(ServerUnavailableError) as caught:
        list(client.search("Questionnaire"))
    assert str(caught.value).startswith(
        "GET [base]?_getpages=...&_getpagesoffset=... failed: 500 Internal Server Error"
    )
