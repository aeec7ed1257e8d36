"""What every resource the sync writes shares: derived keys, the response it comes from,
and the plan the entries go into.

Exactly-once rests on identifiers derived from the source server, the response id and
(for what is written per version) its version: every write is a conditional create or a
conditional update keyed that way (:mod:`rejection_fhir.fhir.bundle`), so replaying a
transaction, or a whole sync, changes nothing on the server.  ``fullUrl``\\ s are
``urn:uuid:`` values derived from the same keys, so later entries (Provenance) can point
at earlier ones and a replay plans the very same Bundle.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rejection_fhir.fhir import bundle
from rejection_fhir.fhir.json import JsonDict

#: Identifier/tag system for everything the sync derives.  Values are opaque but stable.
DERIVED_SYSTEM = "https://rejection-fhir.org/fhir/sid/derived"
_NS = uuid.UUID("0f6c3f1e-7a8b-4c7e-9b0a-2d1f5e6a7b8c")


def source_key(source_base: str) -> str:
    """Short stable key for a source server, so ids from two servers never collide."""
    return hashlib.sha256(source_base.rstrip("/").encode()).hexdigest()[:12]


def derived_id(source_base: str, response_id: str, version: str | None, kind: str) -> str:
    parts = [source_key(source_base), response_id]
    if version is not None:
        parts.append(version)
    parts.append(kind)
    return "/".join(parts)


def urn(key: str) -> str:
    """The entry's ``fullUrl``: a ``urn:uuid:`` stable for the key."""
    return f"urn:uuid:{uuid.uuid5(_NS, key)}"


def identifier(key: str) -> list[JsonDict]:
    """``Resource.identifier`` carrying the derived key."""
    return [{"system": DERIVED_SYSTEM, "value": key}]


def create_once(key: str, resource: JsonDict) -> JsonDict:
    """Conditional create keyed on the resource's derived identifier."""
    return bundle.conditional_create(urn(key), resource, {"identifier": f"{DERIVED_SYSTEM}|{key}"})


def keep_updated(key: str, resource: JsonDict) -> JsonDict:
    """Conditional update keyed on the derived identifier: one resource per key, updated in
    place when the response is amended (an Observation's trend keeps one point)."""
    return bundle.conditional_update(urn(key), resource, {"identifier": f"{DERIVED_SYSTEM}|{key}"})


def subject_of(qr: Mapping[str, Any]) -> JsonDict | None:
    """The response's subject, copied, or None when it has none."""
    subject = qr.get("subject")
    return dict(subject) if isinstance(subject, Mapping) else None


@dataclass(frozen=True)
class ResponseVersion:
    """Where the response lives and which version of it this is."""

    source_base: str
    id: str
    version: str
    #: Write relative references when the EHR is the server the response came from.
    same_server: bool = True

    @property
    def reference(self) -> str:
        if self.same_server:
            return f"QuestionnaireResponse/{self.id}"
        return f"{self.source_base.rstrip('/')}/QuestionnaireResponse/{self.id}"

    @property
    def versioned_reference(self) -> str:
        return f"{self.reference}/_history/{self.version}"

    def key(self, kind: str, *, per_version: bool) -> str:
        """The derived key of what is written for this response: ``per_version`` for what
        each version gets anew (note, Provenance), else one per response (Observations,
        Flags: an amendment updates them or leaves them be)."""
        return derived_id(self.source_base, self.id, self.version if per_version else None, kind)


@dataclass
class WritePlan:
    entries: list[JsonDict] = field(default_factory=list)
    #: fullUrl of each entry that counts as "written for this response", in entry order.
    written: list[str] = field(default_factory=list)

    def bundle(self) -> JsonDict:
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}
