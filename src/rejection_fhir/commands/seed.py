"""``rejection-fhir seed``: a synthetic client with a few responses, for demos and trials.

Writes test data, so it refuses any server but a loopback one unless told otherwise.

It leaves what the server's EHR would hold for a client, as far as the server's
CapabilityStatement says: a Patient, one visit (Encounter; EHRs that file notes against a
visit need one), the worksheets' Questionnaires where clients cannot publish them (the EHR
would hold them itself), and the client's responses: in one transaction where the server
takes transactions, else one ``POST`` each, as a patient portal would send them.

The local test server's EHR profiles (``/fhir/<profile>/``, servers/profiles/README.md)
refuse some of these writes, as the imitated EHR would.  For those, seed sends the test-only
header ``X-Rfhir-Test-Access: all``, which the profiles honour from loopback only.  Seed is
the one place that sends it, and only to a loopback server (never with ``--allow-remote``
to another host).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from rejection_fhir import settings as settings_module
from rejection_fhir.errors import ConfigError
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.worksheet.synthetic import ResponseFactory, encounter, patient

#: The local test server's test-only access header (servers/profiles/README.md).
TEST_ACCESS_HEADER = "X-Rfhir-Test-Access"


@dataclass(frozen=True)
class Seeded:
    patient: str
    responses: list[str]
    encounter: str | None = None
    questionnaires: int = 0


def _resource_caps(capabilities: Mapping[str, Any], resource_type: str) -> Mapping[str, Any] | None:
    for rest in capabilities.get("rest") or []:
        for resource in rest.get("resource") or []:
            if isinstance(resource, Mapping) and resource.get("type") == resource_type:
                return resource
    return None


def _allows(capabilities: Mapping[str, Any], resource_type: str, interaction: str) -> bool:
    """Whether the CapabilityStatement lets clients do *interaction* on *resource_type*."""
    resource = _resource_caps(capabilities, resource_type)
    if resource is None:
        return False
    return any(i.get("code") == interaction for i in resource.get("interaction") or [])


def _takes_transactions(capabilities: Mapping[str, Any]) -> bool:
    return any(
        i.get("code") == "transaction"
        for rest in capabilities.get("rest") or []
        for i in rest.get("interaction") or []
    )


def _post(
    client: FhirClient,
    resource: Mapping[str, Any],
    access: Mapping[str, str],
    *,
    if_none_exist: str | None = None,
) -> str:
    """``POST`` *resource* with *access* headers; the new (or matched) resource's id."""
    headers = dict(access)
    if if_none_exist:
        headers["If-None-Exist"] = if_none_exist
    response = client.request(
        "POST",
        str(resource["resourceType"]),
        body=resource,
        headers=headers,
        idempotent=bool(if_none_exist),
    )
    body = response.body if isinstance(response.body, Mapping) else {}
    if isinstance(body.get("id"), str):
        return str(body["id"])
    # Prefer: return=minimal servers: [base]/Type/id/_history/n
    location = (response.headers.get("Location") or "").split("/_history/")[0]
    return location.rstrip("/").rsplit("/", 1)[-1]


def seed(
    settings: settings_module.Settings,
    questionnaires: Sequence[Mapping[str, Any]],
    *,
    seed_value: int = 2026,
    rounds: int = 2,
    allow_remote: bool = False,
) -> Seeded:
    """One synthetic Patient and ``rounds`` responses to every Questionnaire, a week apart."""
    server = settings.server or ""
    host = urlsplit(server).hostname or ""
    loopback = settings_module.is_loopback(host)
    if not allow_remote and not loopback:
        raise ConfigError(
            f"refusing to write synthetic clients to {host}: seed is for local test servers",
            hint="pass --allow-remote if this really is a test server",
        )
    # Only ever to this machine: a remote server must never be asked for test access.
    access = {TEST_ACCESS_HEADER: "all"} if loopback else {}
    factory = ResponseFactory(seed_value)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(weeks=rounds)
    with settings_module.make_client(settings) as client:
        client.check_fhir_version()
        capabilities = client.capabilities()
        patient_id = _post(
            client, patient(f"demo-{seed_value}", family="Demo", given="Alex"), access
        )
        subject = f"Patient/{patient_id}"
        visit_id = _post(client, encounter(subject, start - timedelta(days=1)), access)

        # Where clients cannot publish Questionnaires, the EHR holds its own: put them there,
        # once per url|version.  Elsewhere that is `publish`'s job, as before.
        published = 0
        if access and not _allows(capabilities, "Questionnaire", "create"):
            for questionnaire in questionnaires:
                criteria = urlencode(
                    {
                        "url": questionnaire.get("url", ""),
                        "version": questionnaire.get("version", ""),
                    }
                )
                _post(client, questionnaire, access, if_none_exist=criteria)
                published += 1

        responses = []
        for week in range(rounds):
            for i, questionnaire in enumerate(questionnaires):
                when = start + timedelta(weeks=week, hours=i)
                response = factory.response(questionnaire, subject=subject, authored=when)
                # Filled in during the visit: the note sync writes is filed against it.
                response["encounter"] = {"reference": f"Encounter/{visit_id}"}
                responses.append(response)
        if _takes_transactions(capabilities):
            entries = [
                {"resource": qr, "request": {"method": "POST", "url": "QuestionnaireResponse"}}
                for qr in responses
            ]
            result = client.transaction(
                {"resourceType": "Bundle", "type": "transaction", "entry": entries}, sensitive=True
            )
            ids = [f"QuestionnaireResponse/{e.id}" for e in result.entries]
        else:
            # A plain POST per response: what a patient portal sends, allowed everywhere.
            ids = [
                f"QuestionnaireResponse/{client.create(qr, sensitive=True).id}" for qr in responses
            ]
    return Seeded(subject, ids, encounter=f"Encounter/{visit_id}", questionnaires=published)
