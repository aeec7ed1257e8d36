"""What a FHIR server says it can do: a CapabilityStatement and a SMART configuration, typed.

Pure: no I/O, nothing about worksheets.  :func:`parse_capability_statement` reads the parts of
an R4 CapabilityStatement that decide how a client can publish, search and write (interactions
per resource type, conditional create/update, versioning, search parameters, operations,
security), tolerating what real servers publish: missing arrays, unknown codes, duplicate
resource entries, DSTU2-style ``Conformance`` leftovers are refused with a clear message.

Observation categories a server accepts are not a field of the CapabilityStatement; servers
say it through ``supportedProfile`` (US Core's vital-signs, laboratory, survey... profiles).
:func:`observation_categories` maps those profiles to the categories of
http://terminology.hl7.org/CodeSystem/observation-category; no profile at all means "not
restricted by the statement".

Some facts have no field at all (which version header guards an update, whether a note must
reference an Encounter, which content types a note may have); servers that state them do so in
``documentation`` text.  :func:`stated_header` and :func:`note_requirements` read the few
phrasings they know and answer None ("not stated") otherwise, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rejection_fhir.errors import FhirServerError

#: Interactions that change data (``CapabilityStatement.rest.resource.interaction.code``).
WRITE_INTERACTIONS = ("create", "update", "patch", "delete")

RESTFUL_SECURITY = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

#: Substrings of Observation profile URLs -> the observation-category code they imply.
#: US Core (3.1 to 7) and the FHIR core vital-signs profiles; the longest match wins.
_PROFILE_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("us-core-observation-lab", "laboratory"),
    ("us-core-observation-clinical-result", "laboratory"),
    ("us-core-observation-survey", "survey"),
    ("us-core-observation-screening-assessment", "survey"),
    ("us-core-observation-sdoh-assessment", "survey"),
    ("us-core-smokingstatus", "social-history"),
    ("us-core-observation-occupation", "social-history"),
    ("us-core-observation-pregnancy", "social-history"),
    ("us-core-observation-sexual-orientation", "social-history"),
    ("us-core-observation-imaging", "imaging"),
    ("us-core-vital-signs", "vital-signs"),
    ("us-core-blood-pressure", "vital-signs"),
    ("us-core-average-blood-pressure", "vital-signs"),
    ("us-core-bmi", "vital-signs"),
    ("us-core-body-height", "vital-signs"),
    ("us-core-body-weight", "vital-signs"),
    ("us-core-body-temperature", "vital-signs"),
    ("us-core-head-circumference", "vital-signs"),
    ("us-core-heart-rate", "vital-signs"),
    ("us-core-respiratory-rate", "vital-signs"),
    ("us-core-pulse-oximetry", "vital-signs"),
    ("pediatric-bmi-for-age", "vital-signs"),
    ("pediatric-weight-for-height", "vital-signs"),
    ("head-occipital-frontal-circumference-percentile", "vital-signs"),
    ("StructureDefinition/vitalsigns", "vital-signs"),
    ("StructureDefinition/bp", "vital-signs"),
    ("StructureDefinition/bodyheight", "vital-signs"),
    ("StructureDefinition/bodyweight", "vital-signs"),
    ("StructureDefinition/bodytemp", "vital-signs"),
    ("StructureDefinition/heartrate", "vital-signs"),
    ("StructureDefinition/resprate", "vital-signs"),
    ("StructureDefinition/oxygensat", "vital-signs"),
    ("StructureDefinition/headcircum", "vital-signs"),
    ("StructureDefinition/bmi", "vital-signs"),
)


@dataclass(frozen=True)
class ResourceCapabilities:
    """One ``rest.resource`` entry: what the server does with one resource type."""

    type: str
    interactions: frozenset[str] = frozenset()
    search_params: frozenset[str] = frozenset()
    operations: frozenset[str] = frozenset()
    conditional_create: bool = False
    conditional_update: bool = False
    update_create: bool = False
    #: ``no-version`` | ``versioned`` | ``versioned-update`` | "" (not stated).
    versioning: str = ""
    supported_profiles: tuple[str, ...] = ()
    documentation: str = ""

    def can(self, interaction: str) -> bool:
        return interaction in self.interactions

    def searchable(self, param: str) -> bool:
        return self.can("search-type") and param in self.search_params


@dataclass(frozen=True)
class ServerCapabilities:
    """The parts of a CapabilityStatement that decide how rejection-fhir can work with a server."""

    fhir_version: str
    software: str
    publisher: str
    system_interactions: frozenset[str]
    system_operations: frozenset[str]
    resources: Mapping[str, ResourceCapabilities]
    security_services: tuple[str, ...]
    token_url: str | None
    #: Search parameters the statement lists for every type (``rest.searchParam``).
    common_search_params: frozenset[str] = frozenset()
    formats: tuple[str, ...] = field(default=())
    #: ``rest.documentation`` and the documentation of system interactions (batch, transaction).
    documentation: str = ""

    def resource(self, resource_type: str) -> ResourceCapabilities | None:
        return self.resources.get(resource_type)

    def can(self, resource_type: str, interaction: str) -> bool:
        found = self.resources.get(resource_type)
        return found is not None and found.can(interaction)

    def searchable(self, resource_type: str, param: str) -> bool:
        found = self.resources.get(resource_type)
        if found is None or not found.can("search-type"):
            return False
        return param in found.search_params or param in self.common_search_params

    def writable(self, resource_type: str) -> frozenset[str]:
        """The write interactions allowed on ``resource_type``."""
        found = self.resources.get(resource_type)
        if found is None:
            return frozenset()
        return frozenset(i for i in WRITE_INTERACTIONS if i in found.interactions)

    def has_export(self) -> tuple[str, ...]:
        """Where a Bulk Data ``$export`` is offered: ``system``, ``Patient``, ``Group``."""
        levels: list[str] = []
        if self.system_operations & {"export"}:
            levels.append("system")
        for level in ("Patient", "Group"):
            found = self.resources.get(level)
            if found is not None and found.operations & {
                "export",
                f"{level.lower()}-export",
            }:
                levels.append(level)
        return tuple(levels)

    def observation_categories(self) -> tuple[str, ...] | None:
        """Categories implied by Observation's supportedProfile; None when not restricted."""
        found = self.resources.get("Observation")
        if found is None or not found.supported_profiles:
            return None
        return observation_categories(found.supported_profiles)


#: "<header>: supported" and the like; the word after the header says whether it is honoured.
_HEADER_STATE = (
    r"\s*(?:[:=]|\b(?:is|are)\b(?: header)?)?\s*"
    r"(supported|required|honou?red|yes|ignored|refused|not supported|unsupported|no)\b"
)
_NEGATIONS = re.compile(
    r"\b(no|not|never|without|instead of|refused|ignored|unsupported)\b", re.IGNORECASE
)


def stated_header(caps: ServerCapabilities, header: str, resource_type: str) -> bool | None:
    """Whether the statement's documentation says ``header`` is honoured on ``resource_type``.

    The resource's own documentation first, then the server's.  "If-Unmodified-Since:
    supported" or "updates require the If-Unmodified-Since header" -> True; "...: ignored" /
    "refused" / "not supported", or a negation in the same sentence before it -> False; no
    mention -> None.
    """
    found = caps.resource(resource_type)
    sentences = [
        sentence
        for text in (found.documentation if found else "", caps.documentation)
        for sentence in re.split(r"(?<=[.;])\s+", text)
        if header.lower() in sentence.lower()
    ]
    # A stated state ("If-Match: refused") wins over a passing mention in a description.
    for sentence in sentences:
        at = sentence.lower().find(header.lower())
        state = re.match(_HEADER_STATE, sentence[at + len(header) :], re.IGNORECASE)
        if state:
            return state.group(1).lower() in ("supported", "required", "honoured", "honored", "yes")
    for sentence in sentences:
        at = sentence.lower().find(header.lower())
        return not _NEGATIONS.search(sentence[:at])
    return None


@dataclass(frozen=True)
class NoteRequirements:
    """What a DocumentReference (the sync's note) must hold, as the statement's text says."""

    #: ``context.encounter`` must reference an existing Encounter (None: not stated).
    encounter: bool | None
    #: The content types accepted (None: not stated).
    content_types: tuple[str, ...] | None


_ENCOUNTER_RULE = re.compile(
    r"(encounter[^.]*\b(must|required|requires)\b|\b(must|requires?)\b[^.]*\bencounter)",
    re.IGNORECASE,
)
_CONTENT_TYPES = re.compile(
    r"content types? (?:accepted|allowed|supported):\s*(.+?)\.(?:\s|$)", re.I
)


def note_requirements(caps: ServerCapabilities) -> NoteRequirements:
    found = caps.resource("DocumentReference")
    text = found.documentation if found else ""
    types = _CONTENT_TYPES.search(text)
    return NoteRequirements(
        encounter=True if _ENCOUNTER_RULE.search(text) else None,
        content_types=(
            tuple(t.strip() for t in types.group(1).split(",") if t.strip()) if types else None
        ),
    )


def observation_categories(profiles: tuple[str, ...]) -> tuple[str, ...] | None:
    """The observation-category codes these Observation profiles imply (sorted).

    None when some profile is one this table does not know: then the statement does not tell
    which categories are accepted, and nothing should be concluded from it.
    """
    found: set[str] = set()
    for profile in profiles:
        base = profile.split("|", 1)[0].rstrip("/")
        matches = [(len(key), category) for key, category in _PROFILE_CATEGORIES if key in base]
        if not matches:
            return None
        found.add(max(matches)[1])
    return tuple(sorted(found))


@dataclass(frozen=True)
class SmartConfiguration:
    """``.well-known/smart-configuration``: what a SMART client needs to know."""

    token_endpoint: str | None
    grant_types: tuple[str, ...]
    auth_methods: tuple[str, ...]
    signing_algorithms: tuple[str, ...]
    capabilities: tuple[str, ...]
    scopes: tuple[str, ...]

    @property
    def backend_services(self) -> bool:
        """client_credentials with private_key_jwt: SMART Backend Services."""
        return "client_credentials" in self.grant_types and (
            "private_key_jwt" in self.auth_methods
            or "client-confidential-asymmetric" in self.capabilities
        )


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str) and v)


def _objects(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def _codes(items: object, key: str = "code") -> frozenset[str]:
    return frozenset(
        str(i[key]).lstrip("$") for i in _objects(items) if isinstance(i.get(key), str) and i[key]
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def parse_smart_configuration(document: Mapping[str, Any]) -> SmartConfiguration:
    token = document.get("token_endpoint")
    return SmartConfiguration(
        token_endpoint=token if isinstance(token, str) and token else None,
        grant_types=_strings(document.get("grant_types_supported")),
        auth_methods=_strings(document.get("token_endpoint_auth_methods_supported")),
        signing_algorithms=_strings(
            document.get("token_endpoint_auth_signing_alg_values_supported")
        ),
        capabilities=_strings(document.get("capabilities")),
        scopes=_strings(document.get("scopes_supported")),
    )


def _resource(entry: Mapping[str, Any]) -> ResourceCapabilities:
    profiles = _strings(entry.get("supportedProfile"))
    documentation = [_text(entry.get("documentation"))]
    documentation += [_text(i.get("documentation")) for i in _objects(entry.get("interaction"))]
    return ResourceCapabilities(
        type=str(entry["type"]),
        interactions=_codes(entry.get("interaction")),
        search_params=_codes(entry.get("searchParam"), "name"),
        operations=_codes(entry.get("operation"), "name"),
        conditional_create=entry.get("conditionalCreate") is True,
        conditional_update=entry.get("conditionalUpdate") is True,
        update_create=entry.get("updateCreate") is True,
        versioning=_text(entry.get("versioning")),
        supported_profiles=profiles,
        documentation=" ".join(d for d in documentation if d),
    )


def parse_capability_statement(statement: Mapping[str, Any]) -> ServerCapabilities:
    """Read an R4 CapabilityStatement; :class:`FhirServerError` if it is something else."""
    kind = statement.get("resourceType")
    if kind != "CapabilityStatement":
        raise FhirServerError(
            f"the server's metadata is a {kind if isinstance(kind, str) else 'non-FHIR answer'}, "
            "not an R4 CapabilityStatement",
            hint="point the server URL at the server's R4 base (DSTU2 servers answer Conformance)",
        )
    rests = [r for r in _objects(statement.get("rest")) if r.get("mode", "server") == "server"]
    resources: dict[str, ResourceCapabilities] = {}
    system_interactions: set[str] = set()
    system_operations: set[str] = set()
    common: set[str] = set()
    documentation: list[str] = []
    services: list[str] = []
    token_url: str | None = None
    for rest in rests:
        system_interactions |= _codes(rest.get("interaction"))
        system_operations |= _codes(rest.get("operation"), "name")
        common |= _codes(rest.get("searchParam"), "name")
        documentation.append(_text(rest.get("documentation")))
        documentation += [_text(i.get("documentation")) for i in _objects(rest.get("interaction"))]
        for entry in _objects(rest.get("resource")):
            if not isinstance(entry.get("type"), str) or not entry["type"]:
                continue
            parsed = _resource(entry)
            known = resources.get(parsed.type)
            if known is not None:  # some servers list a type twice: take the union
                parsed = ResourceCapabilities(
                    type=parsed.type,
                    interactions=known.interactions | parsed.interactions,
                    search_params=known.search_params | parsed.search_params,
                    operations=known.operations | parsed.operations,
                    conditional_create=known.conditional_create or parsed.conditional_create,
                    conditional_update=known.conditional_update or parsed.conditional_update,
                    update_create=known.update_create or parsed.update_create,
                    versioning=known.versioning or parsed.versioning,
                    supported_profiles=known.supported_profiles + parsed.supported_profiles,
                    documentation=" ".join(
                        d for d in (known.documentation, parsed.documentation) if d
                    ),
                )
            resources[parsed.type] = parsed
        security = rest.get("security")
        if isinstance(security, Mapping):
            for service in _objects(security.get("service")):
                codings = _objects(service.get("coding"))
                codes = [_text(c.get("code")) for c in codings if _text(c.get("code"))]
                if codes:
                    services.extend(codes)
                elif _text(service.get("text")):
                    services.append(_text(service.get("text")))
            for extension in _objects(security.get("extension")):
                if extension.get("url") != OAUTH_URIS:
                    continue
                for part in _objects(extension.get("extension")):
                    if part.get("url") == "token" and _text(part.get("valueUri")):
                        token_url = _text(part.get("valueUri"))
    software = statement.get("software")
    name = version = ""
    if isinstance(software, Mapping):
        name, version = _text(software.get("name")), _text(software.get("version"))
    return ServerCapabilities(
        fhir_version=_text(statement.get("fhirVersion")),
        software=" ".join(p for p in (name, version) if p),
        publisher=_text(statement.get("publisher")),
        system_interactions=frozenset(system_interactions),
        system_operations=frozenset(system_operations),
        resources=resources,
        security_services=tuple(dict.fromkeys(services)),
        token_url=token_url,
        common_search_params=frozenset(common),
        formats=_strings(statement.get("format")),
        documentation=" ".join(d for d in documentation if d),
    )
