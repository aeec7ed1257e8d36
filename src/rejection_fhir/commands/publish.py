"""``rejection-fhir publish``: put the built worksheets and terminology on a FHIR server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rejection_fhir import settings as settings_module
from rejection_fhir.commands.build import build_all
from rejection_fhir.errors import FormsNotAcceptedError, VersionConflictError
from rejection_fhir.fhir.capabilities import parse_capability_statement
from rejection_fhir.fhir.client import EntryResult, FhirClient
from rejection_fhir.publish import PublishPlan, Step, plan_publish, suggest_versions
from rejection_fhir.sync.strategy import conditional_entry_limit


@dataclass(frozen=True)
class Published:
    step: Step
    #: Where the resource now lives on the server (Type/id), when known.
    location: str | None


@dataclass
class PublishReport:
    server: str
    plan: PublishPlan
    dry_run: bool
    results: list[Published] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.plan.steps:
            counts[step.action] = counts.get(step.action, 0) + 1
        return counts


def _holdings(
    client: FhirClient, resources: Sequence[dict[str, Any]], *, all_versions: bool
) -> tuple[dict[Any, list[dict[str, Any]]], dict[Any, list[dict[str, Any]]]]:
    existing: dict[Any, list[dict[str, Any]]] = {}
    versions: dict[Any, list[dict[str, Any]]] = {}
    for resource in resources:
        rtype, url, version = resource["resourceType"], resource["url"], resource["version"]
        if all_versions:
            found = list(client.search(rtype, {"url": url}))
            versions[(rtype, url)] = found
            existing[(rtype, url, version)] = [r for r in found if r.get("version") == version]
        else:
            existing[(rtype, url, version)] = list(
                client.search(rtype, {"url": url, "version": version})
            )
    return existing, versions


def publish(
    source_dir: Path,
    settings: settings_module.Settings,
    *,
    base_url: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    retire_old: bool = False,
) -> PublishReport:
    """Publish every built resource in one transaction; a rerun changes nothing.

    Raises VersionConflictError, writing nothing, when the server holds different content
    at a url|version we built (unless ``force``).
    """
    result, _ = build_all(source_dir, base_url=base_url)
    resources = result.resources
    with settings_module.make_client(settings) as client:
        client.check_fhir_version()
        refuse_if_no_forms(client.capabilities(), client.base_url)
        limit = conditional_entry_limit(parse_capability_statement(client.capabilities()))
        existing, versions = _holdings(client, resources, all_versions=retire_old)
        plan = plan_publish(
            resources, existing, force=force, other_versions=versions if retire_old else None
        )
        report = PublishReport(client.base_url, plan, dry_run)
        if plan.conflicts:
            lines = [
                f"{s.resource_type} {s.canonical} differs from what the server holds ({', '.join(s.differences)})"
                for s in plan.conflicts
            ]
            first = plan.conflicts[0]
            raise VersionConflictError(
                "refusing to change published content:\n  " + "\n  ".join(lines),
                hint=f"bump the version in the worksheet source (for {first.version}: {suggest_versions(first.version)}), "
                "or pass --force to overwrite",
            )
        if dry_run or not plan.writes:
            report.results = [Published(s, _location(s)) for s in plan.steps]
            return report
        written = iter(_commit(client, plan.transaction(), limit))
        for step in plan.steps:
            if step.action in {"create", "update", "retire"}:
                entry = next(written)
                location = (
                    f"{entry.resource_type or step.resource_type}/{entry.id}" if entry.id else None
                )
                if step.action == "create" and not entry.created:
                    # Someone published the same url|version between our search and our write.
                    step = Step(
                        "unchanged",
                        step.resource_type,
                        step.url,
                        step.version,
                        step.resource,
                        entry.id,
                    )
                report.results.append(Published(step, location))
            else:
                report.results.append(Published(step, _location(step)))
        return report


def _commit(client: FhirClient, bundle: dict[str, Any], limit: int | None) -> list[EntryResult]:
    """One transaction, or transactions of at most ``limit`` entries where the server caps a
    transaction holding conditional entries (Medplum: 8).  Each chunk is atomic on its own;
    every entry is conditional on url+version, so a publish stopped between chunks is
    completed by running it again."""
    entries = bundle.get("entry") or []
    if limit is None or len(entries) <= limit:
        return list(client.transaction(bundle).entries)
    out: list[EntryResult] = []
    for start in range(0, len(entries), limit):
        chunk = {**bundle, "entry": entries[start : start + limit]}
        out.extend(client.transaction(chunk).entries)
    return out


def refuse_if_no_forms(statement: Mapping[str, Any], server: str) -> None:
    """Stop before writing anything when the server's statement lists resources but no
    Questionnaire create: EHRs such as Epic, Oracle Health, athenaOne and Canvas take forms
    only through their own tools.  (A statement listing nothing says nothing: go on.)"""
    caps = parse_capability_statement(statement)
    if not caps.resources or caps.can("Questionnaire", "create"):
        return
    name = caps.software or server
    raise FormsNotAcceptedError(
        f"{name} does not take Questionnaires over FHIR (its CapabilityStatement offers no "
        "Questionnaire create); nothing was written",
        hint="EHRs of this kind load forms with their own tools (the vendor's form builder or "
        "content import, done by the vendor or the clinic's analysts): give them the built "
        "Questionnaires, which `rejection-fhir build --out DIR` writes as JSON files "
        "(DIR/Questionnaire-*.json, the terminology beside them, and DIR/bundle.json), or "
        "the FHIR package `rejection-fhir build --package --out DIR` writes "
        "(DIR/NAME-VERSION.tgz).  sync still works against this server: it resolves the "
        "Questionnaires from the local build",
    )


def _location(step: Step) -> str | None:
    return f"{step.resource_type}/{step.server_id}" if step.server_id else None
