"""Publishing: what must change on a server so it holds exactly the built resources.

Pure: built resources and what the server already holds in, a plan out.  A canonical
resource is identified by url|version; once published, its content is frozen.  Different
content under the same url|version would silently change what earlier responses mean, so
the plan refuses it (unless forced) and suggests the next version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rejection_fhir.fhir import bundle
from rejection_fhir.fhir.json import SERVER_MANAGED, JsonDict, same_value
from rejection_fhir.fhir.semver import is_older, parse_version

Action = Literal["create", "unchanged", "update", "conflict", "retire"]


@dataclass(frozen=True)
class Step:
    action: Action
    resource_type: str
    url: str
    version: str
    resource: Mapping[str, Any]
    #: Server id of the resource already there (unchanged, update, conflict, retire).
    server_id: str | None = None
    differences: tuple[str, ...] = ()

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"


@dataclass
class PublishPlan:
    steps: list[Step] = field(default_factory=list)

    @property
    def conflicts(self) -> list[Step]:
        return [s for s in self.steps if s.action == "conflict"]

    @property
    def writes(self) -> list[Step]:
        return [s for s in self.steps if s.action in {"create", "update", "retire"}]

    def transaction(self) -> JsonDict:
        """Every write as one transaction; each entry conditional, so a rerun is harmless."""
        entries = []
        for step in self.writes:
            if step.action == "create":
                entries.append(
                    bundle.conditional_create(
                        f"urn:uuid:{_uuid(step)}",
                        dict(step.resource),
                        {"url": step.url, "version": step.version},
                    )
                )
            else:
                resource = {**step.resource, "id": step.server_id}
                entries.append(bundle.update(step.resource_type, str(step.server_id), resource))
        return bundle.transaction(entries)


def _uuid(step: Step) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, step.canonical))


def _comparable(resource: Mapping[str, Any]) -> dict[str, Any]:
    # meta as a whole is left out: servers add versionId, lastUpdated, source, tags and
    # sometimes profiles, none of which changes what a published worksheet asks.
    return {k: v for k, v in resource.items() if k not in SERVER_MANAGED}


def differences(
    built: Mapping[str, Any], existing: Mapping[str, Any], limit: int = 5
) -> tuple[str, ...]:
    """Which top-level elements (and which items, by linkId) differ."""
    a, b = _comparable(built), _comparable(existing)
    diffs: list[str] = []
    for key in sorted(set(a) | set(b)):
        if key == "item" and key in a and key in b:
            diffs.extend(_item_differences(a["item"], b["item"]))
        elif not same_value(a.get(key), b.get(key)):
            diffs.append(key)
    return tuple(diffs[:limit]) + (
        (f"and {len(diffs) - limit} more",) if len(diffs) > limit else ()
    )


def _item_differences(built: Sequence[Any], existing: Sequence[Any]) -> list[str]:
    def index(items: Sequence[Any], out: dict[str, Any]) -> dict[str, Any]:
        for item in items:
            if isinstance(item, Mapping) and isinstance(item.get("linkId"), str):
                out[item["linkId"]] = {k: v for k, v in item.items() if k != "item"}
                index(item.get("item") or [], out)
        return out

    a, b = index(built, {}), index(existing, {})
    diffs = [
        f"item '{link}' {'added' if link not in b else 'removed' if link not in a else 'changed'}"
        for link in list(a) + [x for x in b if x not in a]
        if link not in a or link not in b or not same_value(a[link], b[link])
    ]
    if not diffs and [i.get("linkId") for i in built] != [i.get("linkId") for i in existing]:
        diffs.append("item order")
    return diffs


def suggest_versions(version: str) -> str:
    parsed = parse_version(version)
    if parsed is None:
        return "a new version"
    major, minor, patch = parsed.major, parsed.minor, parsed.patch
    return f"{major}.{minor}.{patch + 1} for wording fixes, {major}.{minor + 1}.0 for additions, or {major + 1}.0.0 for breaking changes"


def plan_publish(
    built: Sequence[Mapping[str, Any]],
    existing: Mapping[tuple[str, str, str], Sequence[Mapping[str, Any]]],
    *,
    force: bool = False,
    other_versions: Mapping[tuple[str, str], Sequence[Mapping[str, Any]]] | None = None,
) -> PublishPlan:
    """Decide create / unchanged / update / conflict for each built resource.

    ``existing`` maps (resourceType, url, version) to what the server holds there.
    ``other_versions`` maps (resourceType, url) to every version the server holds; when
    given, older active ones are planned for retirement.
    """
    plan = PublishPlan()
    for resource in built:
        rtype, url, version = resource["resourceType"], resource["url"], resource["version"]
        found = existing.get((rtype, url, version), [])
        if not found:
            plan.steps.append(Step("create", rtype, url, version, resource))
            continue
        current = found[0]
        diffs = differences(resource, current)
        if not diffs:
            plan.steps.append(Step("unchanged", rtype, url, version, resource, current.get("id")))
        elif force:
            plan.steps.append(
                Step("update", rtype, url, version, resource, current.get("id"), diffs)
            )
        else:
            plan.steps.append(
                Step("conflict", rtype, url, version, resource, current.get("id"), diffs)
            )
    for resource in built:
        rtype, url, version = resource["resourceType"], resource["url"], resource["version"]
        for old in (other_versions or {}).get((rtype, url), []):
            if (
                old.get("version") != version
                and old.get("status") != "retired"
                and is_older(old.get("version"), version)
            ):
                retired = {k: v for k, v in old.items() if k != "meta"}
                retired["status"] = "retired"
                plan.steps.append(
                    Step("retire", rtype, url, str(old.get("version")), retired, old.get("id"))
                )
    return plan
