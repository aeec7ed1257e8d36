"""check-server against CapabilityStatements real vendors published (served by the
in-memory server, tests/fakefhir.py).

The statements are saved in tests/data/capabilities/ (SOURCE.md says where each came from).
The server is empty unless a test gives it data, so the conclusions here are what each
statement itself allows; the probes' own logic is tested against servers that honour,
ignore or refuse parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import responses

from rejection_fhir.cli import main
from rejection_fhir.commands.check_server import (
    NO_SUCH_PATIENT,
    capabilities_json,
    check_server,
    report_json,
    report_text,
)
from rejection_fhir.settings import load_settings
from tests.fakefhir import BASE, FHIR_JSON, FakeFhir

CAPABILITIES = Path(__file__).parents[2] / "data" / "capabilities"
SCHEMA = Path(__file__).parents[3] / "schemas" / "check-server.schema.json"


def saved(name: str) -> dict:
    return json.loads((CAPABILITIES / name).read_text())


def _held(resource_type: str, n: int) -> dict:
    """The n-th resource of a type on a server with data: all for one patient, in 2026."""
    resource = {"resourceType": resource_type, "id": f"known-{n}"}
    if resource_type == "QuestionnaireResponse":
        resource |= {"subject": {"reference": "Patient/known-1"}, "authored": "2026-11-20"}
    return resource


def serve(
    rsps: responses.RequestsMock,
    statement: dict,
    *,
    smart: dict | None = None,
    totals: dict[str, int] | None = None,
    honoured: set[str] | None = None,
    refused: set[str] = frozenset(),
    unknown: str = "refuse",
    summary_count: bool = True,
    read_headers: dict[str, str] | None = None,
    needs_filter: set[str] = frozenset(),
) -> FakeFhir:
    """The in-memory server playing a vendor: its statement, an optional SMART
    configuration, ``totals`` resources per type (ids known-1, ...), and its way with
    search parameters: only ``honoured`` known, others refused, ignored or matching nothing
    (``unknown``), some ``refused``, types searched only with a filter, ``_summary=count``
    or not, the version headers a read carries."""
    fake = FakeFhir(rsps)
    fake.statement = statement
    smart_answer = (200, FHIR_JSON, json.dumps(smart)) if smart else (404, {}, "")
    fake.route("GET", ".well-known/smart-configuration", smart_answer)
    for resource_type, count in (totals or {}).items():
        fake.add(*(_held(resource_type, n) for n in range(1, count + 1)))
    fake.known_params = honoured
    fake.unknown_params = unknown
    fake.refused_params = set(refused)
    fake.summary_count = summary_count
    fake.needs_filter = set(needs_filter)
    if read_headers is not None:
        fake.read_headers = set(read_headers)
    return fake


@pytest.fixture
def settings():
    return load_settings({"server": BASE, "retries": 0}, env={})


def run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
        raise SystemExit(0)
    out, _ = capsys.readouterr()
    return int(caught.value.code or 0), out


# ----------------------------------------------------------------------- vendors' statements


def test_oracle_cerner_millennium_ehr(rsps, settings):
    serve(
        rsps,
        saved("oracle-cerner-millennium-r4-ehr.json"),
        smart=saved("oracle-cerner-millennium-r4-smart-configuration.json"),
    )
    report = check_server(settings)
    strategy = report.strategy
    # Questionnaire read-only; QuestionnaireResponse searchable only by _id or patient, but a
    # Group $export is offered; DocumentReference create without conditional create or an
    # identifier search; Observation for vital signs, labs and smoking status only; no Flag.
    assert strategy.publish.value == "none"
    assert strategy.read.value == "bulk-export"
    assert strategy.write.value == "create-with-ledger"
    assert strategy.writable == ("DocumentReference", "Provenance")
    assert strategy.observation_categories == ("laboratory", "social-history", "vital-signs")
    topics = {d.topic for d in strategy.degradations}
    assert {"publish", "read", "write", "Observation", "Flag"} <= topics
    assert report.ok
    data = report_json(report)
    assert data["capabilities"]["findResponses"]["patient"]["declared"]
    assert not data["capabilities"]["findResponses"]["_lastUpdated"]["declared"]
    assert data["capabilities"]["findResponses"]["export"] == ["Group"]
    assert data["capabilities"]["auth"]["services"] == ["SMART-on-FHIR"]
    assert data["capabilities"]["auth"]["backendServices"] is True
    assert data["capabilities"]["auth"]["tokenUrl"].startswith("https://authorization.cerner.com/")


def test_oracle_cerner_open_endpoint_cannot_take_notes(rsps, settings, capsys):
    serve(rsps, saved("oracle-cerner-millennium-r4-open.json"))
    report = check_server(settings)
    assert report.strategy.write.value == "none" and report.strategy.read.value == "per-patient"
    assert not report.ok
    code, out = run(capsys, "check-server", "--server", BASE)
    assert code == 12
    assert "DocumentReference cannot be created: no note can be written" in out
    assert "verdict: NOT OK" in out


def test_hapi_fhir_8_8_0(rsps, settings):
    serve(rsps, saved("hapi-fhir-8.8.0.json"))
    strategy = check_server(settings).strategy
    assert (strategy.publish.value, strategy.read.value, strategy.write.value) == (
        "transaction",
        "_lastUpdated",
        "transaction",
    )
    assert strategy.version_check.value == "If-Match"
    assert strategy.max_conditional_entries is None and strategy.degradations == ()


def test_medplum_router(rsps, settings):
    serve(rsps, saved("medplum-router-5.2.13-wrapper.json"), unknown="match-nothing")
    report = check_server(settings)
    strategy = report.strategy
    assert strategy.write.value == "transaction" and strategy.max_conditional_entries == 8
    assert strategy.read.value == "_lastUpdated"


def test_azure_api_for_fhir_as_saved(rsps, settings):
    serve(rsps, saved("azure-api-for-fhir-2.2.45.json"))
    report = check_server(settings)
    # The saved copy lists 39 types, none of them DocumentReference or QuestionnaireResponse
    # (see SOURCE.md): export at system level is all there is.
    assert report.strategy.read.value == "bulk-export"
    assert report.strategy.write.value == "none" and not report.ok
    assert report_json(report)["capabilities"]["writeModes"]["batch"] is True


def test_epic_r4_sandbox(rsps, settings):
    serve(rsps, saved("epic-r4-sandbox-may-2026.json"))
    report = check_server(settings)
    strategy = report.strategy
    # Epic's sandbox statement: Questionnaire read/search only; QuestionnaireResponse
    # searchable by authored and patient but not _lastUpdated; DocumentReference and
    # Observation create/update without conditional create; Flag and Provenance read-only;
    # no transaction or batch; Group $export ("group-export").
    assert (strategy.publish.value, strategy.read.value, strategy.write.value) == (
        "none",
        "authored",
        "search-then-create",
    )
    assert strategy.writable == ("DocumentReference", "Observation")
    assert strategy.version_check.value == "none"
    topics = {d.topic for d in strategy.degradations}
    assert {"publish", "read", "write", "Flag", "Provenance"} <= topics
    assert report.ok
    data = report_json(report)
    assert data["capabilities"]["findResponses"]["export"] == ["Group"]
    assert data["capabilities"]["writeModes"]["transaction"] is False
    assert data["capabilities"]["writeModes"]["batch"] is False
    assert not data["capabilities"]["findResponses"]["_lastUpdated"]["declared"]
    assert data["capabilities"]["findResponses"]["authored"]["declared"]


def test_athenahealth_r4_cannot_take_notes(rsps, settings, capsys):
    serve(rsps, saved("athenahealth-r4.json"))
    report = check_server(settings)
    strategy = report.strategy
    # athenahealth's statement: QuestionnaireResponse create, read and search (with
    # _lastUpdated); DocumentReference and Observation read/search only; Group $export.
    assert (strategy.publish.value, strategy.read.value, strategy.write.value) == (
        "none",
        "_lastUpdated",
        "none",
    )
    assert strategy.writable == ()
    assert not report.ok
    assert report_json(report)["capabilities"]["findResponses"]["export"] == ["Group"]
    code, out = run(capsys, "check-server", "--server", BASE)
    assert code == 12
    assert "DocumentReference cannot be created: no note can be written" in out


# ----------------------------------------------------------------------- the probes themselves


def test_only_reads_are_sent_and_strict_handling_is_asked(rsps, settings):
    server = serve(rsps, saved("hapi-fhir-8.8.0.json"), totals={"Questionnaire": 3})
    check_server(settings)
    assert server.requests and {seen.method for seen in server.requests} == {"GET"}
    searches = [seen for seen in server.requests if seen.params.get("_summary") == ["count"]]
    assert searches and all(seen.headers.get("Prefer") == "handling=strict" for seen in searches)
    assert not any("$export" in seen.url for seen in server.requests)


def test_with_data_honoured_and_ignored_parameters_are_told_apart(rsps, settings):
    serve(
        rsps,
        saved("hapi-fhir-8.8.0.json"),
        totals={"QuestionnaireResponse": 5},
        honoured={"QuestionnaireResponse:authored", "QuestionnaireResponse:patient"},
        unknown="ignore",
    )
    report = check_server(settings)
    searches = {k: v.value for k, v in report.evidence.searches.items()}
    assert searches["QuestionnaireResponse:_lastUpdated"] == "ignored"
    assert searches["QuestionnaireResponse:authored"] == "works"
    assert report.unknown_params == "ignored"
    # _lastUpdated is listed but ignored: the sync falls back to authored.
    assert report.strategy.read.value == "authored"


def test_a_refused_parameter_is_not_relied_on(rsps, settings):
    serve(
        rsps,
        saved("hapi-fhir-8.8.0.json"),
        refused={"QuestionnaireResponse:_lastUpdated", "QuestionnaireResponse:authored"},
    )
    report = check_server(settings)
    assert report.evidence.searches["QuestionnaireResponse:_lastUpdated"].value == "refused"
    assert report.strategy.read.value == "bulk-export"
    # Refusing an unknown parameter shows even on an empty server.
    assert report.unknown_params == "refused"


def test_fewer_results_prove_nothing_where_unknown_parameters_match_nothing(rsps, settings):
    serve(
        rsps,
        saved("medplum-router-5.2.13-wrapper.json"),
        totals={"QuestionnaireResponse": 4},
        unknown="match-nothing",
    )
    report = check_server(settings)
    assert report.unknown_params == "match-nothing"
    assert report.evidence.searches["QuestionnaireResponse:_lastUpdated"].value == "accepted"


def test_count_falls_back_to_count_zero_when_summary_count_is_refused(rsps, settings):
    serve(rsps, saved("hapi-fhir-8.8.0.json"), summary_count=False)
    report = check_server(settings)
    paths = [p.path for p in report.probes]
    assert "QuestionnaireResponse?_count=0" in paths
    assert any(
        p.startswith("QuestionnaireResponse?_lastUpdated=") and p.endswith("_count=0")
        for p in paths
    )


def test_a_search_refused_without_a_filter_is_not_taken_for_a_refused_summary(rsps, settings):
    statement = saved("hapi-fhir-8.8.0.json")
    for entry in statement["rest"][0]["resource"]:
        entry.pop("versioning", None)
    serve(
        rsps,
        statement,
        totals={"Patient": 1, "QuestionnaireResponse": 3},
        needs_filter={"Questionnaire", "QuestionnaireResponse"},
        read_headers={"ETag": 'W/"1"'},
    )
    report = check_server(settings)
    paths = [p.path for p in report.probes]
    # _summary=count still used for the parameter probes: only the bare search was refused.
    assert "QuestionnaireResponse?patient=" + NO_SUCH_PATIENT + "&_summary=count" in paths
    assert report.evidence.searches["QuestionnaireResponse:patient"].value == "accepted"
    # The read went through a patient's responses.
    assert "QuestionnaireResponse?patient=Patient/known-1&_count=1&_elements=id" in paths
    assert "QuestionnaireResponse/known-1" in paths
    assert report.evidence.etag_on_read is True


@pytest.mark.parametrize(
    ("headers", "check"),
    [
        ({"ETag": 'W/"3"', "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}, "If-Match"),
        # A Last-Modified alone does not show If-Unmodified-Since is honoured on an update
        # (epic-like sends one and ignores the header): not stated, so not used.
        ({"Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}, "none"),
    ],
)
def test_a_read_shows_which_version_headers_the_server_sends(rsps, settings, headers, check):
    statement = saved("hapi-fhir-8.8.0.json")
    for entry in statement["rest"][0]["resource"]:
        entry.pop("versioning", None)
    serve(rsps, statement, totals={"Questionnaire": 1}, read_headers=headers)
    report = check_server(settings)
    assert report.strategy.version_check.value == check
    assert any(p.path == "Questionnaire/known-1" for p in report.probes)
    modes = capabilities_json(report)["writeModes"]
    assert modes["ifMatch"] is ("ETag" in headers)
    assert modes["ifUnmodifiedSince"] is None


# ----------------------------------------------------------------------- output


@pytest.mark.parametrize(
    "name",
    [
        "oracle-cerner-millennium-r4-ehr.json",
        "oracle-cerner-millennium-r4-open.json",
        "epic-r4-sandbox-may-2026.json",
        "athenahealth-r4.json",
        "hapi-fhir-8.8.0.json",
        "medplum-router-5.2.13-wrapper.json",
        "azure-api-for-fhir-2.2.45.json",
    ],
)
def test_json_output_matches_its_schema(rsps, capsys, name):
    serve(rsps, saved(name))
    code, out = run(capsys, "check-server", "--server", BASE, "--format", "json")
    data = json.loads(out)
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert code == data["exitCode"] and data["ok"] is (code == 0)


def test_text_output_answers_the_questions_and_lists_every_probe(rsps, settings):
    serve(rsps, saved("oracle-cerner-millennium-r4-ehr.json"))
    report = check_server(settings)
    text = report_text(report)
    for heading in (
        "publish Questionnaires",
        "responses by _lastUpdated",
        "responses by authored",
        "responses per patient",
        "Bulk Data $export",
        "write modes",
        "writable",
        "Observation categories",
        "auth",
        "Strategy",
        "Probes (nothing was written)",
    ):
        assert heading in text
    assert "no Flag: the safety alert goes at the top of the note" in text
    assert all(probe.path in text for probe in report.probes)
