"""How the sync finds QuestionnaireResponses on servers that do not take ``_lastUpdated``.

The read modes (:class:`~rejection_fhir.sync.strategy.ReadMode`) and what the cursor means
in each (docs/read-modes.md):

- ``_lastUpdated`` (HAPI, Medplum, athenaOne): ``_lastUpdated=ge{cursor}`` sorted by it;
  the cursor is the newest ``meta.lastUpdated`` committed.  An amendment changes
  ``lastUpdated``, so it is seen again.  (In :mod:`rejection_fhir.sync.run`.)
- ``authored`` (Canvas): ``authored=ge{cursor}``, not sorted, so the cursor moves once, to
  the newest ``authored`` seen, after every page committed.  **Limitation:** an edit that
  keeps the ``authored`` date (an amendment) is not seen by a later incremental run; a run
  with ``--since`` an earlier date picks it up (the ledger skips what is unchanged).
- ``per-patient`` (Oracle Health: ``QuestionnaireResponse`` searchable only by ``_id`` or
  ``patient``): every response of each listed patient, every run; no cursor (the ledger
  skips what was handled), so amendments are always seen.  The patients come from a list
  file (``--patients FILE``, one ``Patient/id`` or id per line) or a Group
  (``--patients-group ID``: its ``member.entity`` references).
- ``bulk-export`` (``sync --bulk``, :mod:`rejection_fhir.sync.bulk`): ``$export`` with
  ``_since={cursor}``; the cursor is the export's ``transactionTime``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rejection_fhir.errors import ConfigError, InputError
from rejection_fhir.fhir.client import FhirClient

JsonDict = dict[str, Any]

READ_MODES = ("auto", "_lastUpdated", "authored", "per-patient", "bulk-export")


def _responses(bundle: Mapping[str, Any]) -> list[JsonDict]:
    return [
        e["resource"]
        for e in bundle.get("entry", []) or []
        if isinstance(e, Mapping)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == "QuestionnaireResponse"
        and (e.get("search") or {}).get("mode", "match") == "match"
    ]


def authored_pages(
    source: FhirClient, cursor: str | None, until: str | None, count: int
) -> Iterator[list[JsonDict]]:
    params: dict[str, str | list[str]] = {"_count": str(count)}
    bounds = [f"ge{cursor}"] if cursor else []
    if until:
        bounds.append(f"lt{until}")
    if bounds:
        params["authored"] = bounds
    for bundle in source.search_bundles("QuestionnaireResponse", params):
        yield _responses(bundle)


def newest_authored(resources: list[JsonDict], newest: str | None) -> str | None:
    for qr in resources:
        authored = qr.get("authored")
        if isinstance(authored, str) and (newest is None or authored > newest):
            newest = authored
    return newest


def patient_pages(source: FhirClient, patients: list[str], count: int) -> Iterator[list[JsonDict]]:
    for patient in patients:
        params = {"patient": patient.removeprefix("Patient/"), "_count": str(count)}
        for bundle in source.search_bundles("QuestionnaireResponse", params):
            yield _responses(bundle)


def read_patient_list(path: Path) -> list[str]:
    """Patient ids from a file: one ``Patient/id`` or id per line; ``#`` starts a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(
            f"cannot read the patient list {path}: {exc.strerror}",
            hint="give a file with one Patient id (or Patient/id) per line",
        ) from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        pid = entry.removeprefix("Patient/")
        if "/" in pid or not pid.replace("-", "").replace(".", "").isalnum() or len(pid) > 64:
            raise InputError(
                f"{path}:{number}: {entry!r} is not a Patient id",
                hint="one Patient id (or Patient/id) per line",
            )
        out.append(pid)
    return list(dict.fromkeys(out))


def group_patients(source: FhirClient, group_id: str) -> list[str]:
    group = source.read("Group", group_id)
    out = []
    for member in group.get("member") or []:
        reference = (
            (member.get("entity") or {}).get("reference") if isinstance(member, Mapping) else None
        )
        if isinstance(reference, str) and reference.startswith("Patient/"):
            out.append(reference.split("/", 1)[1])
    if not out:
        raise ConfigError(
            f"Group/{group_id} lists no Patient members: nothing to poll",
            hint="give the Group of the clinic's patients, or --patients FILE",
        )
    return list(dict.fromkeys(out))
