"""A small world of responses on HAPI, and the end state the sync leaves for it.

The end state is normalised so that two worlds built from the same seed can be compared
entry by entry: the source server's key, response ids, patient ids and server-assigned ids
are replaced by stable names (``SRC``, ``QR3``, ``P1``; a written resource by its
identifier).  Two runs that wrote the same things exactly once give equal states; a
duplicate shows up as a count of 2, a loss as a missing key.

Everything here talks to HAPI directly (never through a fault proxy): building the world
and reading the end state must not be disturbed by the faults under test.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rejection_fhir.commands.build import build_all
from rejection_fhir.commands.publish import publish
from rejection_fhir.ehr.entries import DERIVED_SYSTEM, source_key
from rejection_fhir.ehr.extract import observation_values
from rejection_fhir.ehr.provenance import DEVICE_SYSTEM
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.response.answers import resolve_response
from rejection_fhir.scoring import safety_alerts, score_response
from rejection_fhir.settings import Settings
from rejection_fhir.sync.state import SyncState
from rejection_fhir.worksheet.synthetic import ResponseFactory, patient

JsonDict = dict[str, Any]
KINDS = ("DocumentReference", "Observation", "Flag", "Provenance")

#: Responses per transaction when a world is created.
CHUNK = 5
#: Which responses an amendment round changes: core-beliefs ones (every 8th, from 0).
AMEND_EVERY = 8


@dataclass
class World:
    canonical_base: str
    built: Any
    patients: list[str]
    qrs: list[JsonDict]
    #: A server instant no later than the first of the world's responses.
    since: str
    amended: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Nothing to undo: the worksheets' summarizers travel in a catalog, not a registry."""


def make_world(
    repo: Path,
    settings: Settings,
    client: FhirClient,
    canonical_base: str,
    *,
    responses: int,
    patients: int = 2,
    seed: int = 11,
) -> World:
    """Publish the worksheets under ``canonical_base``, create patients and responses."""
    built, _ = build_all(repo / "questionnaires", base_url=canonical_base)
    publish(repo / "questionnaires", settings, base_url=canonical_base)
    subjects: list[str] = []
    since = ""
    for i in range(patients):
        created = client.create(patient(f"{canonical_base}-{i}", given=f"Client{i}"))
        subjects.append(f"Patient/{created.id}")
        if not since:
            held = client.read("Patient", str(created.id))
            since = held["meta"]["lastUpdated"]
    qrs = list(ResponseFactory(seed=seed).many(built.questionnaires, subjects, responses))
    # In chunks: a transaction gives its resources one lastUpdated, and the sync's cursor
    # should meet both ties and steps (chunks do not line up with the sync's batches).
    for start in range(0, len(qrs), CHUNK):
        chunk = qrs[start : start + CHUNK]
        entries = [
            {"resource": qr, "request": {"method": "POST", "url": "QuestionnaireResponse"}}
            for qr in chunk
        ]
        result = client.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}, sensitive=True
        )
        for qr, got in zip(chunk, result.entries, strict=True):
            qr["id"] = got.id
    return World(canonical_base, built, subjects, qrs, since)


def seed_cursor(state_path: Path, source: str, since: str) -> None:
    """Start the sync at the world's first response, not at the whole shared server's."""
    with SyncState(state_path) as state:
        state.set_cursor(source.rstrip("/"), since)


def amend(client: FhirClient, world: World) -> list[str]:
    """Amend every core-beliefs response: status amended, a new 'strength-after'."""
    changed = []
    for index in range(0, len(world.qrs), AMEND_EVERY):
        rid = world.qrs[index]["id"]
        held = client.read("QuestionnaireResponse", rid)
        amended = copy.deepcopy(held)
        amended["status"] = "amended"
        for item in amended.get("item", []):
            if item["linkId"] == "strength-after":
                before = item["answer"][0]["valueInteger"]
                item["answer"] = [{"valueInteger": 5 if before != 5 else 10}]
        client.update(amended, sensitive=True)
        changed.append(rid)
    world.amended.extend(changed)
    return changed


def expected_counts(world: World) -> dict[str, int]:
    """What a correct sync writes for the world, computed from the responses themselves."""
    by_url = {q["url"]: q for q in world.built.questionnaires}
    observations = flags = 0
    for qr in world.qrs:
        questionnaire = by_url[qr["questionnaire"].split("|")[0]]
        observations += len(observation_values(resolve_response(qr, questionnaire)))
        observations += sum(
            1 for s in score_response(qr, questionnaire) if s.scorable and s.value is not None
        )
        flags += len(safety_alerts(qr, questionnaire))
    versions = len(world.qrs) + len(world.amended)
    return {
        "DocumentReference": versions,
        "Observation": observations,
        "Flag": flags,
        "Provenance": versions,
    }


# --------------------------------------------------------------------------- the end state


@dataclass
class EndState:
    """Per kind, how often each (normalised) identifier is held, and what each one says."""

    counts: dict[str, Counter[str]]
    facts: dict[str, str]
    #: How many tool Devices the Provenances name (one, if it was created exactly once).
    devices: int

    def total(self, kind: str) -> int:
        return sum(self.counts[kind].values())

    def duplicates(self) -> int:
        return sum(n - 1 for kind in KINDS for n in self.counts[kind].values() if n > 1)


def _search_all(client: FhirClient, rtype: str, params: Mapping[str, str]) -> list[JsonDict]:
    found: dict[str, JsonDict] = {}
    for bundle in client.search_bundles(rtype, {**params, "_count": "200"}):
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") or {}
            if resource.get("id"):
                found[f"{resource['resourceType']}/{resource['id']}"] = resource
    return list(found.values())


def _identifier(resource: Mapping[str, Any]) -> str | None:
    if resource.get("resourceType") == "Provenance":
        tags = (resource.get("meta") or {}).get("tag") or []
        codes = [t.get("code") for t in tags if t.get("system") == DERIVED_SYSTEM]
        return codes[0] if codes else None
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == DERIVED_SYSTEM:
            return str(identifier.get("value"))
    return None


def end_state(client: FhirClient, world: World, source: str) -> EndState:
    """Read what the sync wrote for ``world`` (responses synced from ``source``)."""
    resources: list[JsonDict] = []
    for subject in world.patients:
        resources += _search_all(
            client,
            "DocumentReference",
            {"subject": subject, "_revinclude": "Provenance:target"},
        )
        resources += _search_all(client, "Observation", {"subject": subject})
        resources += _search_all(client, "Flag", {"subject": subject})
    names: dict[str, str] = {source_key(source): "SRC", world.canonical_base: "BASE"}
    for i, qr in enumerate(world.qrs):
        names[qr["id"]] = f"QR{i}"
    for i, subject in enumerate(world.patients):
        names[subject.split("/", 1)[1]] = f"P{i}"
    by_reference = {}
    for resource in resources:
        key = _identifier(resource)
        by_reference[f"{resource['resourceType']}/{resource['id']}"] = key or "?"

    def normal(text: str) -> str:
        text = re.sub(r"Device/[^\"]+", "Device/TOOL", text)
        for reference, key in by_reference.items():
            text = text.replace(f'"{reference}"', f'"{reference.split("/")[0]}#{key}"')
        for raw, name in names.items():
            text = text.replace(raw, name)
        return text

    counts: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    facts: dict[str, list[str]] = {}
    for resource in resources:
        kind = resource["resourceType"]
        key = normal(_identifier(resource) or f"(no identifier) {resource['id']}")
        counts[kind][key] += 1
        fact = json.loads(normal(json.dumps(_fact(resource))))
        if "target" in fact:
            fact["target"] = sorted(fact["target"])  # in normalised form: ids sort at random
        facts.setdefault(f"{kind} {key}", []).append(json.dumps(fact, sort_keys=True))
    # The tool's Device, created once and named by every Provenance.  Counted through our
    # own Provenances, so other tests' Devices on a shared server do not count.
    devices = {
        agent.get("who", {}).get("reference")
        for resource in resources
        if resource["resourceType"] == "Provenance"
        for agent in resource.get("agent") or []
        if agent.get("who", {}).get("reference")  # put / ledger-only: display only
    }
    for reference in devices:
        held = client.read("Device", str(reference).split("/", 1)[1])
        assert {"system": DEVICE_SYSTEM, "value": "rejection-fhir"} in held["identifier"]
    return EndState(counts, {k: " | ".join(sorted(v)) for k, v in facts.items()}, len(devices))


def _fact(resource: Mapping[str, Any]) -> JsonDict:
    """The parts of a written resource that two equal runs must agree on."""
    kind = resource["resourceType"]
    if kind == "DocumentReference":
        return {
            "status": resource.get("status"),
            "docStatus": resource.get("docStatus"),
            "relatesTo": resource.get("relatesTo"),
            "related": resource.get("context", {}).get("related"),
            "subject": resource.get("subject"),
        }
    if kind == "Observation":
        value = {k: v for k, v in resource.items() if k.startswith("value")}
        return {"status": resource.get("status"), "value": value, "code": resource.get("code")}
    if kind == "Flag":
        return {"status": resource.get("status"), "subject": resource.get("subject")}
    return {
        "target": [t.get("reference", "") for t in resource.get("target") or []],
        "entity": [e.get("what") for e in resource.get("entity") or []],
    }


@dataclass(frozen=True)
class Comparison:
    duplicates: int
    losses: int
    extras: int
    changed: int
    lines: tuple[str, ...]

    @property
    def equal(self) -> bool:
        return not (self.duplicates or self.losses or self.extras or self.changed)


def compare(actual: EndState, expected: EndState, limit: int = 12) -> Comparison:
    """Duplicates, losses and differences of ``actual`` against a fault-free ``expected``."""
    lines: list[str] = []
    duplicates = losses = extras = changed = 0
    for kind in KINDS:
        got, want = actual.counts[kind], expected.counts[kind]
        for key in sorted(set(got) | set(want)):
            if got[key] > 1:
                duplicates += got[key] - 1
                lines.append(f"duplicate: {kind} {key} x{got[key]}")
            if key not in got:
                losses += 1
                lines.append(f"lost: {kind} {key}")
            elif key not in want:
                extras += 1
                lines.append(f"extra: {kind} {key}")
            elif got[key] == 1 and actual.facts[f"{kind} {key}"] != expected.facts[f"{kind} {key}"]:
                changed += 1
                lines.append(
                    f"differs: {kind} {key}: {actual.facts[f'{kind} {key}']} "
                    f"!= {expected.facts[f'{kind} {key}']}"
                )
    if actual.devices > expected.devices:
        duplicates += actual.devices - expected.devices
        lines.append(f"the Provenances name {actual.devices} tool Devices")
    return Comparison(duplicates, losses, extras, changed, tuple(lines[:limit]))


def ledger_written(state_path: Path, source: str) -> set[tuple[str, str]]:
    with SyncState(state_path) as state:
        return {
            (e.response_id, e.response_version)
            for e in state.entries(source=source.rstrip("/"), outcome="written")
        }


def published_counts(client: FhirClient, resources: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many copies of each built url|version the server holds."""
    held: Counter[str] = Counter()
    for resource in resources:
        canonical = f"{resource['url']}|{resource['version']}"
        found = list(
            client.search(
                resource["resourceType"], {"url": resource["url"], "version": resource["version"]}
            )
        )
        held[f"{resource['resourceType']} {canonical}"] = len(found)
    return held


def describe(exchanges: Sequence[Any]) -> str:
    """The proxy's injections, one per line, for assertion messages."""
    return "\n".join(
        f"  #{e.seq} {e.method} {e.target[:60]!r} <- {e.fault}"
        f"{' (server committed)' if e.committed else ''}"
        for e in exchanges
        if e.fault
    )
