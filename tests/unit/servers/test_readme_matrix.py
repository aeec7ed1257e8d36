"""The README's "Which EHRs" matrix agrees with the profile files and the tested strategies.

Each ``*-like`` row is checked against its profile file (servers/profiles/<name>.json) for what
the file states outright, and against the strategy that
tests/integration/test_check_server_profiles.py asserts check-server chooses on the live
profile (``EXPECTED``), so that neither can change without the matrix following.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_check_server_profiles import EXPECTED

ROOT = Path(__file__).resolve().parents[3]
PROFILES = sorted(p.stem for p in (ROOT / "servers" / "profiles").glob("*.json"))
#: check-server's write strategy -> the sync's write mode (rejection_fhir.sync.executors).
WRITE_MODE = {"transaction": "transaction", "create-with-ledger": "ledger-only", "none": "none"}
COLUMNS = [
    "server",
    "publish forms",
    "find responses",
    "write mode (auto)",
    "version check",
    "written besides the note",
    "degraded",
]


def matrix() -> dict[str, dict[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Which EHRs\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    rows = {}
    for line in lines[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        rows[cells["server"].split(" ")[0]] = cells
    return rows


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "servers" / "profiles" / f"{name}.json").read_text())
    return data


def test_every_profile_has_a_row_and_no_row_names_a_profile_that_is_gone() -> None:
    rows = matrix()
    assert PROFILES and set(PROFILES) <= set(rows)
    assert {name for name in rows if name.endswith("-like")} == set(PROFILES)


@pytest.mark.parametrize("name", PROFILES)
def test_row_matches_the_profile_file(name: str) -> None:
    row = matrix()[name]
    profile = load(name)
    resources = profile["resources"]
    takes_forms = "create" in resources["Questionnaire"]["interactions"]
    assert row["publish forms"] == ("yes" if takes_forms else "no")
    mode = row["write mode (auto)"]
    note = resources["DocumentReference"]
    assert (mode == "none") is ("create" not in note["interactions"])
    assert (mode == "transaction") is bool(
        profile["transaction"]["allowed"] and note.get("conditionalCreate")
    )
    if profile["versioning"]["ifMatch"] != "supported":
        assert row["version check"] != "If-Match"
    besides = {t.strip() for t in row["written besides the note"].split(",")} - {"nothing"}
    for kind in ("Flag", "Provenance", "Device"):
        takes = kind in resources and "create" in resources[kind]["interactions"]
        assert (kind in besides) is takes, kind
    categories = resources.get("Observation", {}).get("writableCategories")
    survey = "create" in resources.get("Observation", {}).get("interactions", []) and (
        categories is None or "survey" in categories
    )
    assert ("Observation" in besides) is survey
    if "Flag" not in besides and mode != "none":
        assert "alert" in row["degraded"] and "in the note" in row["degraded"]
    if note.get("contentTypes") == ["text/plain"]:
        assert "text/plain" in row["degraded"]
    if profile["transaction"].get("strictIsolationMaxEntries"):
        assert (
            f"at most {profile['transaction']['strictIsolationMaxEntries']} entries"
            in row["degraded"]
        )


@pytest.mark.parametrize("name", PROFILES)
def test_row_matches_what_check_server_chooses(name: str) -> None:
    row = matrix()[name]
    expected = EXPECTED[name]
    assert row["write mode (auto)"] == WRITE_MODE[expected.write]
    assert row["version check"] == expected.version_check
    assert re.findall(r"`([^`]+)`", row["find responses"])[0] == expected.read
    written = tuple(t for t in expected.writable if t != "DocumentReference" and t != "Task")
    besides = tuple(
        t.strip() for t in row["written besides the note"].split(",") if t.strip() != "nothing"
    )
    assert besides == written
    assert ("no note can be written" in row["degraded"]) is (expected.exit_code != 0)
