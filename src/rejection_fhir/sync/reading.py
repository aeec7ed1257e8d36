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
  file (``--patients FILE``, one ``Patient/id`` or id per line), a Group
  (``--patients-group ID``: its ``member.entity`` references), or the patients the sync
  already knows (``--patients-from ledger``: the subjects of the responses this source's
  ledger holds, found by ``_id``; :func:`ledger_patients`).  Given together, the lists are
  joined: the ledger knows only patients with a response already synced, so a new
  patient's first response needs the file or the Group.
- ``bulk-export`` (``sync --bulk``, :mod:`rejection_fhir.sync.bulk`): ``$export`` with
  ``_since={cursor}`` at the level the server offers (``Group/{id}/$export`` for
  ``--patients-group``); the cursor is the export's ``transactionTime``.  Where a server
  exports only per Group, ``auto`` with ``--patients-group`` exports that Group rather than
  polling its members (docs/read-modes.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rejection_fhir.errors import ConfigError, InputError
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.fhir.json import JsonDict
from rejection_fhir.sync.state import StateStore

READ_MODES = ("auto", "_lastUpdated", "authored", "per-patient", "bulk-export")
#: Where ``--patients-from`` takes the patients to poll from.
PATIENT_SOURCES = ("ledger",)
#: Response ids per ``_id`` search when looking up the ledger's patients.
ID_CHUNK = 50


def _responses(bundle: Mapping[str, Any]) -> list[JsonDict]:
    return [
        e["resource"]
        for e in bundle.get("entry", []) or []
        if isinstance(e, Mapping)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == "QuestionnaireResponse"
        and _search_mode(e.get("search")) == "match"
    ]


def _search_mode(search: object) -> object:
    """A searchset entry's mode; a server's malformed ``search`` counts as a match."""
    return search.get("mode", "match") if isinstance(search, Mapping) else "match"


def last_updated_pages(
    source: FhirClient,
    since: str | None,
    until: str | None,
    count: int,
    *,
    on_total: Callable[[int | None], None] | None = None,
) -> Iterator[list[JsonDict]]:
    """Responses by ``_lastUpdated`` in ``[since, until)``, oldest first (the default read
    mode); ``on_total`` is told the server's count (``_total=accurate``) before the first
    page, or None when it gives none."""
    params: dict[str, str | list[str]] = {"_sort": "_lastUpdated", "_count": str(count)}
    bounds = [f"ge{since}"] if since else []
    if until:
        bounds.append(f"lt{until}")
    if bounds:
        params["_lastUpdated"] = bounds
    if on_total is not None:
        params["_total"] = "accurate"
    first = True
    for bundle in source.search_bundles("QuestionnaireResponse", params):
        if first and on_total is not None:
            total = bundle.get("total")
            on_total(total if isinstance(total, int) else None)
        first = False
        yield _responses(bundle)


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


def ledger_patients(source: FhirClient, state: StateStore, source_base: str) -> list[str]:
    """The patients whose responses the ledger holds for ``source_base`` (any outcome:
    written, rejected, uncertain, absent), read from the responses themselves: the ledger
    keeps response ids, so their subjects are looked up with ``_id`` searches of
    :data:`ID_CHUNK` ids each (``_id`` is a search even Oracle Health allows).  A response
    deleted since, or whose subject is not a Patient, adds nobody."""
    ids = sorted({entry.response_id for entry in state.entries(source_base)})
    out: list[str] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        params = {"_id": ",".join(chunk), "_count": str(len(chunk))}
        for qr in source.search("QuestionnaireResponse", params):
            subject = qr.get("subject")
            reference = subject.get("reference") if isinstance(subject, Mapping) else None
            if isinstance(reference, str) and reference.startswith("Patient/"):
                out.append(reference.split("/", 1)[1])
    return list(dict.fromkeys(out))


def patient_list(
    source: FhirClient,
    state: StateStore,
    source_base: str,
    *,
    patients_file: Path | None = None,
    patients_group: str | None = None,
    patients_from: str | None = None,
) -> list[str]:
    """The patients to poll: the file's, the Group's and the ledger's, joined in that order."""
    out: list[str] = []
    if patients_file is not None:
        out += read_patient_list(patients_file)
    if patients_group is not None:
        out += group_patients(source, patients_group)
    if patients_from == "ledger":
        known = ledger_patients(source, state, source_base)
        if not known and not out:
            raise ConfigError(
                f"the ledger holds no response from {source_base} yet, so it knows no "
                "patients to poll",
                hint="give the first run --patients FILE or --patients-group GROUP_ID; "
                "later runs find those patients in the ledger",
            )
        out += known
    elif patients_from is not None:
        raise ConfigError(
            f"--patients-from {patients_from!r}: unknown source of patients",
            hint=f"use one of: {', '.join(PATIENT_SOURCES)}",
        )
    if not out:
        raise ConfigError(
            "this server finds responses only per patient: sync needs the list of patients",
            hint="give --patients FILE (one Patient id per line), --patients-group GROUP_ID, "
            "or --patients-from ledger (the patients whose responses were synced before)",
        )
    return list(dict.fromkeys(out))
