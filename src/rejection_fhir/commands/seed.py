"""``rejection-fhir seed``: a synthetic client with a few responses, for demos and trials.

Writes test data, so it refuses any server but a loopback one unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from rejection_fhir import settings as settings_module
from rejection_fhir.errors import ConfigError
from rejection_fhir.synthetic import ResponseFactory, patient


@dataclass(frozen=True)
class Seeded:
    patient: str
    responses: list[str]


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
    if not allow_remote and not settings_module.is_loopback(urlsplit(server).hostname or ""):
        raise ConfigError(
            f"refusing to write synthetic clients to {urlsplit(server).hostname}: seed is for local test servers",
            hint="pass --allow-remote if this really is a test server",
        )
    factory = ResponseFactory(seed_value)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(weeks=rounds)
    with settings_module.make_client(settings) as client:
        client.check_fhir_version()
        created = client.create(patient(f"demo-{seed_value}", family="Demo", given="Alex"))
        subject = f"Patient/{created.id}"
        entries = []
        for week in range(rounds):
            for i, questionnaire in enumerate(questionnaires):
                when = start + timedelta(weeks=week, hours=i)
                qr = factory.response(questionnaire, subject=subject, authored=when)
                entries.append(
                    {"resource": qr, "request": {"method": "POST", "url": "QuestionnaireResponse"}}
                )
        result = client.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}, sensitive=True
        )
    return Seeded(subject, [f"QuestionnaireResponse/{e.id}" for e in result.entries])
