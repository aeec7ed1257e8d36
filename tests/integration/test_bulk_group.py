"""``sync --bulk --patients-group`` on the oracle-like profile: a Group-level Bulk Data export.

oracle-like (servers/profiles/oracle-like.json) offers ``$export`` only at Group level, as
Oracle Health does, and takes Group read only.  The world: two patients of the clinic's
Group and one outside it, each seeded by ``seed`` (a visit and a few responses, posted as
a patient portal would), the Group written with the loopback-only test access (the EHR
would hold it; the profile refuses it from a client).  The sync exports the Group's
responses and writes exactly one note for each; a rerun asks ``_since`` the export's
``transactionTime`` and writes nothing; a response that arrives later is the next run's
only write.  Without a Group the sync stops before reading anything.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from rejection_fhir.commands.build import build_all
from rejection_fhir.commands.seed import TEST_ACCESS_HEADER, Seeded, seed
from rejection_fhir.errors import ConfigError
from rejection_fhir.settings import Settings, load_settings
from rejection_fhir.sync.run import SyncOptions, SyncReport, sync
from rejection_fhir.worksheet.catalog import catalog_from_build
from rejection_fhir.worksheet.synthetic import ResponseFactory
from tests.conftest import unavailable
from tests.hapi_server import answers
from tests.integration.conftest import notes_by_response

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROFILE = "oracle-like"


@dataclass
class World:
    base: str
    settings: Settings
    http: requests.Session
    built: Any
    members: list[Seeded]
    outsider: Seeded
    group: str

    @property
    def member_responses(self) -> set[str]:
        return {r.split("/")[1] for s in self.members for r in s.responses}


@pytest.fixture
def world(fhir_server: str) -> Iterator[World]:
    base = f"{fhir_server}/{PROFILE}"
    if not answers(base):
        unavailable(f"{base} does not answer: the server is not the project's HAPI")
    settings = load_settings({"server": base}, env={})
    canonical = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    built, _ = build_all(REPO / "questionnaires", base_url=canonical)
    questionnaires = built.questionnaires
    members = [seed(settings, questionnaires, seed_value=n, rounds=1) for n in (161, 162)]
    outsider = seed(settings, questionnaires, seed_value=163, rounds=1)
    http = requests.Session()
    http.headers.update(
        {
            "Content-Type": "application/fhir+json",
            "Accept": "application/fhir+json",
            TEST_ACCESS_HEADER: "all",  # the profile takes Group read only
        }
    )
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": s.patient}} for s in members],
    }
    answer = http.post(f"{base}/Group", json=group, timeout=60)
    assert answer.status_code == 201, answer.text
    yield World(base, settings, http, built, members, outsider, answer.json()["id"])
    http.close()


def _sync(world: World, state: Path, **kw: Any) -> SyncReport:
    options = SyncOptions(source=world.base, state_path=state, batch_size=5, **kw)
    return sync(world.settings, options, catalog_from_build(world.built))


def _notes(world: World, subjects: list[str]) -> Counter[str]:
    """Our notes on the server, by the response they summarise (read with test access)."""
    return notes_by_response(world.http, world.base, subjects)


def test_group_export_writes_each_members_response_once_and_resumes_from_its_time(
    world: World, tmp_path: Path
) -> None:
    state = tmp_path / "state.sqlite3"
    seeded = world.member_responses
    assert len(seeded) >= 2

    with pytest.raises(ConfigError, match="only for a Group") as caught:
        _sync(world, state, bulk=True)
    assert "--patients-group GROUP_ID" in (caught.value.hint or "")

    first = _sync(world, state, bulk=True, patients_group=world.group)
    assert first.ok, (first.rejected[:3], first.failed[:3], first.uncertain[:3])
    assert first.tally.written == len(seeded)
    assert first.cursor_after is not None
    everyone = [s.patient for s in (*world.members, world.outsider)]
    notes = _notes(world, everyone)
    assert set(notes) == seeded, "the Group's responses, not the outsider's"
    assert set(notes.values()) == {1}

    again = _sync(world, state, bulk=True, patients_group=world.group)
    assert again.ok and again.tally.written == 0
    assert again.cursor_before == first.cursor_after, "_since the export's transactionTime"
    assert again.cursor_after is not None and again.cursor_after >= first.cursor_after

    # A response that arrives later is the next run's only one: the cursor moved.
    subject = world.members[0].patient
    late = next(ResponseFactory(seed=164).many(world.built.questionnaires, [subject], 1))
    late.pop("id", None)
    posted = world.http.post(f"{world.base}/QuestionnaireResponse", json=late, timeout=60)
    assert posted.status_code == 201, posted.text
    # auto reads the same way when given the Group (the profile exports only Groups).
    third = _sync(world, state, patients_group=world.group)
    assert third.ok and third.tally.written == 1
    assert third.cursor_before == again.cursor_after
    notes = _notes(world, everyone)
    assert set(notes) == seeded | {posted.json()["id"]} and set(notes.values()) == {1}
