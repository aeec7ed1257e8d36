"""End-to-end smoke check of a running HAPI FHIR server: `scripts/hapi smoke` (stdlib only).

Checks what rejection-fhir relies on: a transaction with conditional creates and a conditional
update (replayed: 200 and the same ids), Questionnaire search by url+version,
QuestionnaireResponse search by _lastUpdated/questionnaire/subject/status, instance-less
Questionnaire/$validate, and a bulk export of QuestionnaireResponses down to the NDJSON.
Every run uses fresh identifiers, so it can be repeated against the same server.

Usage: python3 servers/hapi/smoke.py BASE_URL   (exit 0 when every check passes)
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

Response = tuple[int, dict[str, str], bytes]


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Response:
    url = path if path.startswith("http") else f"{base}/{path}"
    all_headers = {"Accept": "application/fhir+json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/fhir+json"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def check(condition: bool, message: str) -> None:
    print(("ok    " if condition else "FAIL  ") + message)
    if not condition:
        sys.exit(1)


def transaction(tag: str, questionnaire_url: str) -> dict[str, Any]:
    patient = "urn:uuid:5e0c1d6e-0000-4000-8000-000000000001"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:rfhir:smoke", "value": f"p-{tag}"}],
                },
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier=urn:rfhir:smoke|p-{tag}",
                },
            },
            {
                "fullUrl": "urn:uuid:5e0c1d6e-0000-4000-8000-000000000002",
                "resource": {
                    "resourceType": "Questionnaire",
                    "url": questionnaire_url,
                    "version": "1.0",
                    "status": "active",
                    "item": [{"linkId": "a", "text": "A?", "type": "string"}],
                },
                "request": {
                    "method": "POST",
                    "url": "Questionnaire",
                    "ifNoneExist": f"url={questionnaire_url}&version=1.0",
                },
            },
            {
                "fullUrl": "urn:uuid:5e0c1d6e-0000-4000-8000-000000000003",
                "resource": {
                    "resourceType": "QuestionnaireResponse",
                    "identifier": {"system": "urn:rfhir:smoke", "value": f"qr-{tag}"},
                    "questionnaire": f"{questionnaire_url}|1.0",
                    "status": "completed",
                    "subject": {"reference": patient},
                    "item": [{"linkId": "a", "answer": [{"valueString": "yes"}]}],
                },
                "request": {
                    "method": "POST",
                    "url": "QuestionnaireResponse",
                    "ifNoneExist": f"identifier=urn:rfhir:smoke|qr-{tag}",
                },
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "smoke"},
                    "identifier": [{"system": "urn:rfhir:smoke", "value": f"o-{tag}"}],
                },
                "request": {
                    "method": "PUT",
                    "url": f"Observation?identifier=urn:rfhir:smoke|o-{tag}",
                },
            },
        ],
    }


def main(base: str) -> None:
    base = base.rstrip("/")
    tag = f"{time.time_ns()}"
    questionnaire_url = f"http://example.org/Questionnaire/smoke-{tag}"
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))

    def statuses(bundle: dict[str, Any]) -> list[str]:
        return [entry["response"]["status"][:3] for entry in bundle["entry"]]

    def ids(bundle: dict[str, Any]) -> list[str]:
        return [entry["response"]["location"].split("/_history")[0] for entry in bundle["entry"]]

    status, _, body = call(base, "POST", "", transaction(tag, questionnaire_url))
    first = json.loads(body)
    check(status == 200 and statuses(first) == ["201"] * 4, "transaction: 4 x 201 Created")
    _, _, body = call(base, "POST", "", transaction(tag, questionnaire_url))
    second = json.loads(body)
    check(statuses(second) == ["200"] * 4, "same transaction again: 4 x 200 OK")
    check(ids(first) == ids(second), "same transaction again: same ids")

    _, _, body = call(base, "GET", f"Questionnaire?url={questionnaire_url}&version=1.0")
    check(json.loads(body).get("total") == 1, "Questionnaire?url=...&version=1.0 finds it")
    _, _, body = call(base, "GET", f"Questionnaire?url={questionnaire_url}&version=2.0")
    check(json.loads(body).get("total") == 0, "Questionnaire?url=...&version=2.0 finds nothing")

    patient = ids(first)[0]
    query = (
        f"QuestionnaireResponse?_lastUpdated=ge{since}&questionnaire={questionnaire_url}|1.0"
        f"&subject={patient}&status=completed"
    )
    _, _, body = call(base, "GET", query)
    check(
        json.loads(body).get("total") == 1,
        "QuestionnaireResponse?_lastUpdated&questionnaire&subject&status",
    )

    invalid = {"resourceType": "Questionnaire", "status": "active", "item": [{"type": "string"}]}
    status, _, body = call(base, "POST", "Questionnaire/$validate", invalid)
    outcome = json.loads(body)
    check(
        any(
            issue["severity"] == "error" and "linkId" in issue.get("diagnostics", "")
            for issue in outcome.get("issue", [])
        ),
        f"Questionnaire/$validate reports the missing linkId (HTTP {status})",
    )

    status, headers, _ = call(
        base,
        "GET",
        f"$export?_type=QuestionnaireResponse&_since={since}",
        headers={"Prefer": "respond-async"},
    )
    poll_url = headers.get("Content-Location", "")
    check(status == 202 and bool(poll_url), "$export accepted (202 + Content-Location)")
    started = time.monotonic()
    while True:
        status, _, body = call(base, "GET", poll_url, headers={"Accept": "application/json"})
        if status != 202 or time.monotonic() - started > 120:
            break
        time.sleep(0.5)
    check(status == 200, f"$export finished in {time.monotonic() - started:.1f} s")
    outputs = json.loads(body).get("output", [])
    check(bool(outputs), "$export status lists output files")
    _, headers, ndjson = call(
        base, "GET", outputs[0]["url"], headers={"Accept": "application/fhir+ndjson"}
    )
    lines = [json.loads(line) for line in ndjson.decode().splitlines() if line.strip()]
    check(
        any(line.get("identifier", {}).get("value") == f"qr-{tag}" for line in lines),
        f"export NDJSON ({headers.get('Content-Type')}) holds the QuestionnaireResponse",
    )
    print("all smoke checks passed")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
