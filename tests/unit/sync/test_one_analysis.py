"""One analysis per response: the sync resolves each QuestionnaireResponse once (issue 14).

The old code resolved every response twice (the clinical summary's resolution was thrown
away and the Observations resolved it again).  Counted two ways: the analyses the sync
makes and what the Observations are read from (both builds), and, in the pure-Python
build, every ResolvedResponse made (a compiled class cannot be spied on).
"""

from __future__ import annotations

import pytest

from rejection_fhir.response.answers import ResolvedResponse
from rejection_fhir.settings import load_settings
from rejection_fhir.sync import prepare
from rejection_fhir.sync.run import SyncOptions, sync
from tests.fakefhir import BASE
from tests.unit.sync.test_run import RECORDED
from tests.unit.test_compiled import _is_extension

COMPILED = _is_extension("rejection_fhir.response.answers")


@pytest.fixture
def resolutions(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The id of each response resolved (a ResolvedResponse made for it)."""
    made: list[str | None] = []
    original = ResolvedResponse.__init__

    def spy(self: ResolvedResponse, source, resolver) -> None:  # type: ignore[no-untyped-def]
        made.append(source.get("id"))
        original(self, source, resolver)

    monkeypatch.setattr(ResolvedResponse, "__init__", spy)
    return made


@pytest.fixture
def analysed(monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    """Each analysis the sync makes, and each resolution its Observations are read from."""
    analyses: list = []
    observed: list = []
    real_analyse, real_values = prepare.analyse, prepare.observation_values

    def analyse(*args, **kwargs):  # type: ignore[no-untyped-def]
        analyses.append(real_analyse(*args, **kwargs))
        return analyses[-1]

    def observation_values(resolved):  # type: ignore[no-untyped-def]
        observed.append(resolved)
        return real_values(resolved)

    monkeypatch.setattr(prepare, "analyse", analyse)
    monkeypatch.setattr(prepare, "observation_values", observation_values)
    return analyses, observed


def test_sync_resolves_each_response_once(
    tmp_path, catalog, resolutions, analysed, qr_at, fake_fhir
):
    phq9 = next(q for q in catalog.questionnaires if q["id"] == "phq-9")
    scored = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{phq9['url']}|{phq9['version']}",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2026-11-20T09:00:00Z",
        "item": [
            {
                "linkId": link_id,
                "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}],
            }
            for link_id in (f"phq9-{i}" for i in range(1, 10))
        ],
    }
    fake_fhir.add(
        qr_at("a", "2026-11-20T10:00:00Z"),
        qr_at("b", "2026-11-20T11:00:00Z"),
        {**scored, "id": "c", "meta": {"versionId": "1", "lastUpdated": "2026-11-20T12:00:00Z"}},
    )
    settings = load_settings({"server": BASE}, env={})
    options = SyncOptions(source=BASE, state_path=tmp_path / "state.sqlite3")
    report = sync(settings, options, catalog, recorded=RECORDED)
    assert report.tally.written == 3, (report.rejected, report.failed)
    analyses, observed = analysed
    assert [a.response["id"] for a in analyses] == ["a", "b", "c"]
    # The Observations are read from the analysis' own resolution, not a second one.
    assert [id(r) for r in observed] == [id(a.resolved) for a in analyses]
    if not COMPILED:
        assert sorted(resolutions) == ["a", "b", "c"]
    # The Observations still come from the one resolution: the score and the answers.
    kinds = [e["resource"]["resourceType"] for b in fake_fhir.committed for e in b["entry"]]
    assert kinds.count("Observation") >= 2
