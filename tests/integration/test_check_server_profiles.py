"""check-server against every EHR profile of the local HAPI server (/fhir/<profile>/).

Each profile is first seeded (`rejection-fhir seed`, which uses the loopback-only test access
for what the profile refuses), so the probes have data to tell an honoured parameter from an
ignored one and a resource to read.  Then check-server runs, in-process and through the CLI
(text and json), and its conclusions and chosen strategy are compared with what the profile
file (servers/profiles/<name>.json) allows and refuses.  check-server itself writes nothing,
which counts taken with the test access before and after show.

The expected values are written out per profile, not derived from the profile file, so that a
wrong conclusion cannot hide behind the same reading of the file; test_expectations_follow_
the_profile_files ties them back to the files.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from rejection_fhir.cli import main
from rejection_fhir.commands.check_server import ServerReport, check_server, report_json
from rejection_fhir.settings import load_settings

pytestmark = pytest.mark.integration

PROFILES_DIR = Path(__file__).resolve().parents[2] / "servers" / "profiles"
ACCESS = {"X-Rfhir-Test-Access": "all", "Accept": "application/fhir+json"}

NO_FLAG = "no Flag: the safety alert goes at the top of the note"
NO_PROVENANCE = "no Provenance: the note names the response it summarises"
NO_DEVICE = "no Device: Provenance and the note name rejection-fhir by display only"
NO_TASK = "no Task: --safety-task cannot be used; the alert is in the note"
NO_QUESTIONNAIRE = "Questionnaires cannot be created here"
NO_NOTE_UPDATE = "DocumentReference cannot be updated"
LEDGER = "only the local ledger keeps writes from being repeated"
BULK = "responses come from a Bulk Data $export of a Group of patients (sync --patients-group GROUP_ID)"
AUTHORED = "responses are found by authored date, not _lastUpdated"
NO_VERSION_CHECK = "no If-Match or If-Unmodified-Since: the old note is marked superseded"
ENCOUNTER = "the note must reference an existing Encounter"
VITALS_ONLY = "Observation only of category vital-signs, not survey"
#: What a profile that takes nothing but the note (and Observations) cannot do.
NOTE_ONLY = (NO_FLAG, NO_PROVENANCE, NO_DEVICE, NO_TASK)

WRITE_MODES = (
    "transaction",
    "batch",
    "conditionalCreate",
    "conditionalUpdate",
    "ifMatch",
    "ifUnmodifiedSince",
    "updateCreate",
)


def write_modes(**supported: bool) -> dict[str, bool | None]:
    """capabilities.writeModes with every mode refused but those named."""
    modes: dict[str, bool | None] = dict.fromkeys(WRITE_MODES, False)
    for mode, value in supported.items():
        assert mode in modes, mode
        modes[mode] = value
    return modes


@dataclass(frozen=True)
class Expected:
    publish: str
    read: str
    write: str
    version_check: str
    max_conditional_entries: int | None
    writable: tuple[str, ...]
    observation_categories: list[str] | None
    #: capabilities.writeModes, as check-server must report them.
    write_modes: dict[str, bool | None]
    #: findResponses: parameter -> (usable, probe result); export levels.
    searches: dict[str, tuple[bool, str]]
    export: list[str]
    note: dict[str, Any]
    #: Substrings each of which one degradation message must hold; and the count of them.
    degradations: tuple[str, ...]
    exit_code: int
    read_sends_etag: bool | None = None
    absent: tuple[str, ...] = field(default=())


EXPECTED: dict[str, Expected] = {
    "epic-like": Expected(
        publish="none",
        # Epic's statement lists QuestionnaireResponse search by authored
        read="authored",
        write="create-with-ledger",
        version_check="none",  # notes can be updated, but with no If-Match
        max_conditional_entries=None,
        writable=("DocumentReference",),
        observation_categories=["vital-signs"],
        write_modes=write_modes(),
        searches={
            "_lastUpdated": (False, "refused"),
            "authored": (True, "works"),
            "patient": (True, "works"),
        },
        export=["Group"],
        note={"requiresEncounter": True, "contentTypes": ["text/plain"]},
        degradations=(
            NO_QUESTIONNAIRE,
            AUTHORED,
            LEDGER,
            NO_VERSION_CHECK,
            ENCOUNTER,
            "the note is accepted only as text/plain",
            VITALS_ONLY,
            *NOTE_ONLY,
        ),
        exit_code=0,
        read_sends_etag=False,
    ),
    "oracle-like": Expected(
        publish="none",
        read="bulk-export",
        write="create-with-ledger",
        version_check="none",  # If-Match is supported, but a note cannot be updated at all
        max_conditional_entries=None,
        writable=("DocumentReference", "Provenance"),
        observation_categories=["laboratory", "vital-signs"],
        # batch: of Provenance only, not used for the note
        write_modes=write_modes(batch=True, ifMatch=True),
        searches={
            "_lastUpdated": (False, "refused"),
            "authored": (False, "refused"),
            # A search without patient is refused, so there is nothing to compare with.
            "patient": (True, "accepted"),
        },
        export=["Group"],
        note={"requiresEncounter": None, "contentTypes": None},
        degradations=(
            NO_QUESTIONNAIRE,
            BULK,
            LEDGER,
            NO_NOTE_UPDATE,
            "Observation only of category laboratory, vital-signs, not survey",
            NO_FLAG,
            NO_DEVICE,
            NO_TASK,
        ),
        exit_code=0,
        read_sends_etag=True,  # read through a patient's responses
        absent=(NO_PROVENANCE,),
    ),
    "athena-like": Expected(
        publish="none",
        read="_lastUpdated",
        write="none",
        version_check="none",
        max_conditional_entries=None,
        writable=(),
        observation_categories=None,
        # ETag sent on reads, but If-Match refused (and so stated)
        write_modes=write_modes(ifMatch=False),
        searches={
            "_lastUpdated": (True, "works"),
            "authored": (False, "refused"),
            "patient": (True, "works"),
        },
        export=["Group"],
        note={"requiresEncounter": None, "contentTypes": None},
        degradations=(NO_QUESTIONNAIRE, "DocumentReference cannot be created: no note"),
        exit_code=12,
        read_sends_etag=True,
        absent=(NO_FLAG,),  # nothing is written at all: no per-resource list
    ),
    "canvas-like": Expected(
        publish="none",
        read="authored",
        write="create-with-ledger",
        version_check="none",  # If-Unmodified-Since is supported, but notes cannot be updated
        max_conditional_entries=None,
        writable=("DocumentReference",),
        observation_categories=["vital-signs"],
        write_modes=write_modes(ifUnmodifiedSince=True),
        searches={
            "_lastUpdated": (False, "refused"),
            "authored": (True, "works"),
            "patient": (True, "works"),
        },
        export=["Group"],  # Canvas' statement offers Group $export
        note={"requiresEncounter": None, "contentTypes": None},
        degradations=(
            NO_QUESTIONNAIRE,
            AUTHORED,
            LEDGER,
            NO_NOTE_UPDATE,
            VITALS_ONLY,
            *NOTE_ONLY,
        ),
        exit_code=0,
        read_sends_etag=False,
    ),
    "medplum-like": Expected(
        publish="transaction",
        read="_lastUpdated",
        write="transaction",
        version_check="If-Match",
        max_conditional_entries=8,
        writable=("DocumentReference", "Observation", "Flag", "Provenance", "Device", "Task"),
        observation_categories=None,
        write_modes=write_modes(
            transaction=True,
            batch=True,
            conditionalCreate=True,
            conditionalUpdate=True,
            ifMatch=True,
        ),
        searches={
            "_lastUpdated": (True, "works"),
            "authored": (True, "works"),
            "patient": (True, "works"),
        },
        export=["system", "Patient", "Group"],
        note={"requiresEncounter": None, "contentTypes": None},
        degradations=("refused above 8 entries",),
        exit_code=0,
        read_sends_etag=True,
    ),
}

PROFILES = sorted(EXPECTED)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILES_DIR / f"{name}.json").read_text())
    return data


def counts(base: str) -> dict[str, int]:
    found = {}
    for kind in ("Questionnaire", "QuestionnaireResponse", "DocumentReference", "Observation"):
        answer = requests.get(
            f"{base}/{kind}", params={"_summary": "count"}, headers=ACCESS, timeout=60
        )
        assert answer.status_code == 200, answer.text
        found[kind] = answer.json()["total"]
    return found


@dataclass
class Checked:
    name: str
    base: str
    report: ServerReport
    data: dict[str, Any]
    written_before: dict[str, int]
    written_after: dict[str, int]


@pytest.fixture(scope="module", params=PROFILES)
def checked(request: pytest.FixtureRequest, fhir_server: str) -> Checked:
    from rejection_fhir.cli.options import built_worksheets
    from rejection_fhir.commands.seed import seed

    name = request.param
    base = f"{fhir_server}/{name}"
    settings = load_settings({"server": base}, env={})
    canonical = f"https://test.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    seed(settings, built_worksheets(None, canonical), rounds=1)
    before = counts(base)
    report = check_server(settings)
    after = counts(base)
    return Checked(name, base, report, report_json(report), before, after)


def test_check_server_writes_nothing(checked: Checked) -> None:
    assert checked.written_after == checked.written_before


def test_chosen_strategy(checked: Checked) -> None:
    expected = EXPECTED[checked.name]
    strategy = checked.data["strategy"]
    assert (
        strategy["publish"],
        strategy["read"],
        strategy["write"],
        strategy["versionCheck"],
        strategy["maxConditionalEntries"],
    ) == (
        expected.publish,
        expected.read,
        expected.write,
        expected.version_check,
        expected.max_conditional_entries,
    )
    assert tuple(strategy["writable"]) == expected.writable
    assert strategy["observationCategories"] == expected.observation_categories
    assert strategy["canSync"] is (expected.exit_code == 0)


def test_what_it_cannot_do(checked: Checked) -> None:
    expected = EXPECTED[checked.name]
    messages = [d["message"] for d in checked.data["strategy"]["degradations"]]
    for part in expected.degradations:
        assert sum(part in m for m in messages) == 1, (part, messages)
    assert len(messages) == len(expected.degradations), messages
    for part in expected.absent:
        assert not any(part in m for m in messages), (part, messages)


def test_conclusions(checked: Checked) -> None:
    expected = EXPECTED[checked.name]
    caps = checked.data["capabilities"]
    assert caps["writeModes"] == expected.write_modes
    for param, (usable, probe) in expected.searches.items():
        seen = caps["findResponses"][param]
        assert (seen["usable"], seen["probe"]) == (usable, probe), param
    assert caps["findResponses"]["export"] == expected.export
    assert caps["note"] == expected.note
    assert caps["observationCategories"] == expected.observation_categories
    assert caps["publishQuestionnaires"] is (expected.publish != "none")
    # Every profile refuses a search parameter it does not list.
    assert caps["unknownSearchParameters"] == "refused"
    assert caps["readSendsETag"] is expected.read_sends_etag
    # No profile imitates authentication: no SMART configuration (servers/profiles/README.md).
    assert caps["auth"]["smartConfiguration"] is False


def test_expectations_follow_the_profile_files(checked: Checked) -> None:
    """The expected values above agree with the profile file on what it states outright."""
    profile = load(checked.name)
    expected = EXPECTED[checked.name]
    resources = profile["resources"]
    modes = expected.write_modes
    assert modes["transaction"] is profile["transaction"]["allowed"]
    assert modes["batch"] is profile["batch"]["allowed"]
    assert modes["ifMatch"] is (profile["versioning"]["ifMatch"] == "supported")
    assert modes["ifUnmodifiedSince"] is (profile["versioning"]["ifUnmodifiedSince"] == "supported")
    assert expected.read_sends_etag is profile["versioning"]["etag"]
    assert expected.export == profile.get("bulkExport", {}).get("levels", [])
    observation = resources.get("Observation", {})
    if "create" in observation.get("interactions", []):
        stated = observation.get("writableCategories")
        assert expected.observation_categories == (None if stated is None else sorted(stated))
    note = resources["DocumentReference"]
    assert ("DocumentReference" in expected.writable) is ("create" in note["interactions"])
    assert expected.note["requiresEncounter"] is (True if note.get("requiresEncounter") else None)
    assert expected.note["contentTypes"] == note.get("contentTypes")
    for kind in ("Flag", "Provenance", "Device", "Task"):
        takes = kind in resources and "create" in resources[kind]["interactions"]
        assert (kind in expected.writable) is takes, kind


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_command_exits_as_it_concludes(
    checked: Checked, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = EXPECTED[checked.name]
    with pytest.raises(SystemExit) as caught:
        main(["check-server", "--server", checked.base, "--format", fmt])
        raise SystemExit(0)
    out = capsys.readouterr().out
    assert int(caught.value.code or 0) == expected.exit_code
    if fmt == "json":
        data = json.loads(out)
        assert data["exitCode"] == expected.exit_code
        assert data["strategy"]["write"] == expected.write
    else:
        rows = {
            line[2:28].strip(): line[28:].strip()
            for line in out.splitlines()
            if line.startswith("  ") and not line.startswith("   ")
        }
        assert rows["publish"] == expected.publish
        assert rows["read responses"] == expected.read
        assert rows["write"].split(",")[0] == expected.write
        assert rows["version check"] == expected.version_check
        assert rows["writes"] == (", ".join(expected.writable) or "nothing")
        verdict = out.strip().splitlines()[-1]
        assert verdict.endswith(f"(exit {expected.exit_code})")
        for part in expected.degradations:
            assert part in out
