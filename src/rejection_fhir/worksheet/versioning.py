"""Version guard: how a Questionnaire changed, and which version that change needs.

A QuestionnaireResponse points at ``url|version``.  Once a version is published its content
is frozen: changing it silently changes what earlier responses mean (SDC: a change that
would invalidate earlier responses, such as added or removed items, a changed type, changed
options or reworded text, needs a new version).  :func:`classify` compares two builds of
one worksheet, the old one (a git ref, a folder of built JSON, a server) and the new one,
and says which of four classes the change falls in.  The test for each class is what
happens to a response made with the old version if it is read as a response to the new one:

=====================  =====================================================  ============
class                  what changed (examples)                                bump
=====================  =====================================================  ============
``none``               nothing that is built: identical once server-managed   none
                       ``id``/``meta``/``text`` and the version are set aside
``compatible``         metadata (title, description, purpose, publisher,      patch
                       contact, copyright, jurisdiction, date, status,
                       experimental, name), rendering hints (itemControl,
                       placeholder, slider step, prefix, option order, code
                       displays) and loosened rules (required dropped, wider
                       min/max or maxLength).  Earlier responses stay valid
                       and mean the same.  SDC would not ask for a new
                       version, but a published ``url|version`` is frozen
                       (``publish`` refuses different content under it), so
                       any change takes at least a patch.
``needs-new-version``  what is asked changes, earlier responses stay valid:   minor
                       reworded item, option or help text; added optional
                       items, added options, added display items and help,
                       removed display items; repeats allowed, readOnly
                       changed; enableWhen changed on an optional item; item
                       codes, units or extraction added; anything not listed
                       here (we do not guess that it is harmless)
``breaking``           an earlier response may no longer be valid, or its     major
                       answers would be read differently: removed items
                       (a changed linkId is a removal plus an addition),
                       moved or reordered items (response items follow the
                       Questionnaire's nesting and order), a changed type,
                       removed or recoded options, changed option weights,
                       scores or units, new required items (or required
                       added), repeats dropped, narrower min/max or
                       maxLength, enableWhen changed on a required item, a
                       changed or removed item code, a changed
                       answerValueSet, a changed canonical url
=====================  =====================================================  ============

Version rules (semantic versions, ``MAJOR.MINOR.PATCH[-pre]``):

* the same version is only allowed for ``none``;
* a changed version must be higher (versions never go backwards, even without a change);
* the bump must be at least the one the class needs (breaking → major, …);
* under ``0.y.z`` everything may change (semver's initial development): a breaking change
  needs a minor bump, everything else a patch;
* after a pre-release (``1.1.0-rc.1``) any higher version is accepted: a pre-release
  promises nothing.

Pure: plain dicts in, a :class:`Change` out.  The item-by-item comparison is
:mod:`rejection_fhir.worksheet.item_changes`; versions are compared by
:mod:`rejection_fhir.fhir.semver` (the same precedence ``publish`` uses).  The edge that
loads the old build and turns a :class:`Change` into findings is
:mod:`rejection_fhir.worksheet.guard`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rejection_fhir.fhir.json import SERVER_MANAGED, same_value
from rejection_fhir.fhir.semver import BUMPS as _BUMPS
from rejection_fhir.fhir.semver import Bump as Bump
from rejection_fhir.fhir.semver import Version as Version
from rejection_fhir.fhir.semver import bump_between as bump_between
from rejection_fhir.fhir.semver import parse_version as parse_version
from rejection_fhir.worksheet.item_changes import KINDS as KINDS
from rejection_fhir.worksheet.item_changes import Kind as Kind
from rejection_fhir.worksheet.item_changes import Reason as Reason
from rejection_fhir.worksheet.item_changes import compare_items

REQUIRED_BUMP: Mapping[Kind, Bump] = {
    "none": "none",
    "compatible": "patch",
    "needs-new-version": "minor",
    "breaking": "major",
}

#: Resource-level elements whose change leaves every earlier response valid and meaning
#: the same: descriptive metadata.
METADATA = frozenset(
    {
        "name",
        "title",
        "status",
        "experimental",
        "date",
        "publisher",
        "contact",
        "description",
        "useContext",
        "jurisdiction",
        "purpose",
        "copyright",
        "approvalDate",
        "lastReviewDate",
        "effectivePeriod",
        "identifier",
        "meta.profile",
    }
)


# --- Version rules (semantic versions: rejection_fhir.fhir.semver) --------------------------


def required_bump(kind: Kind, old: Version) -> Bump:
    """The smallest bump ``kind`` needs after ``old`` (semver's 0.y.z rule applied)."""
    bump = REQUIRED_BUMP[kind]
    if old.major == 0 and bump != "none":
        return "minor" if bump == "major" else "patch"
    return bump


def next_version(old: Version, kind: Kind) -> Version:
    """The smallest version after ``old`` that a change of ``kind`` may take."""
    if kind == "none":
        return old
    if old.prerelease:
        last = old.prerelease[-1]
        if isinstance(last, int):
            return Version(old.major, old.minor, old.patch, (*old.prerelease[:-1], last + 1))
        return Version(old.major, old.minor, old.patch)
    bump = required_bump(kind, old)
    if bump == "major":
        return Version(old.major + 1, 0, 0)
    if bump == "minor":
        return Version(old.major, old.minor + 1, 0)
    return Version(old.major, old.minor, old.patch + 1)


# --- What changed ----------------------------------------------------------------------------


VersionProblem = Literal["unchanged", "too-small", "backwards", "unreadable"]


@dataclass(frozen=True)
class Change:
    kind: Kind
    reasons: tuple[Reason, ...]
    old_version: str
    new_version: str
    #: The bump the change needs from ``old_version`` (after the 0.y.z and pre-release rules).
    required_bump: Bump
    #: The smallest version that would do, e.g. ``2.0.0``; ``old_version`` for ``none``.
    suggested_version: str
    #: Why the new version does not do, or None when it does.
    problem: VersionProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def reasons_needing_more(self) -> tuple[Reason, ...]:
        """The reasons the new version does not cover (all of them for a version problem
        other than a too-small bump; there, only those that need more than was bumped)."""
        if self.problem != "too-small":
            return self.reasons if self.problem else ()
        old, new = parse_version(self.old_version), parse_version(self.new_version)
        if old is None or new is None:
            return self.reasons
        got = _BUMPS.index(bump_between(old, new))
        return tuple(r for r in self.reasons if _BUMPS.index(required_bump(r.kind, old)) > got)


def _worst(kinds: Sequence[Kind]) -> Kind:
    return max(kinds, key=KINDS.index, default="none")


def _content(q: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in q.items() if k not in SERVER_MANAGED and k != "version"}
    profiles = (q.get("meta") or {}).get("profile") if isinstance(q.get("meta"), Mapping) else None
    if profiles:
        out["meta.profile"] = sorted(str(p) for p in profiles)
    return out


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Reason]:
    """Every difference between two Questionnaires, classified; empty when the content is
    the same (server-managed elements and the version aside)."""
    a, b = _content(old), _content(new)
    reasons: list[Reason] = []
    for key in sorted(set(a) | set(b)):
        if key == "item":
            continue
        if same_value(a.get(key), b.get(key)):
            continue
        if key == "url":
            reasons.append(
                Reason(
                    "breaking",
                    f"canonical url changed from {a.get(key)} to {b.get(key)}: earlier responses point at the old one",
                    None,
                    "url",
                )
            )
        elif key in METADATA:
            reasons.append(Reason("compatible", f"{key} changed", None, key))
        else:
            reasons.append(Reason("needs-new-version", f"{key} changed", None, key))
    if not same_value(a.get("item"), b.get("item")):
        compare_items(a.get("item"), b.get("item"), reasons)
    return reasons


def classify(old: Mapping[str, Any], new: Mapping[str, Any]) -> Change:
    """Classify the change from ``old`` to ``new`` and check ``new``'s version against it."""
    reasons = changes(old, new)
    kind = _worst([r.kind for r in reasons])
    old_text, new_text = str(old.get("version", "")), str(new.get("version", ""))
    old_version, new_version = parse_version(old_text), parse_version(new_text)
    if old_version is None or new_version is None:
        if kind == "none" and old_text == new_text:
            return Change(kind, tuple(reasons), old_text, new_text, "none", old_text)
        problem: VersionProblem = "unchanged" if old_text == new_text else "unreadable"
        return Change(
            kind, tuple(reasons), old_text, new_text, REQUIRED_BUMP[kind], "a new version", problem
        )
    need = required_bump(kind, old_version)
    suggested = str(next_version(old_version, kind))
    if new_version < old_version:
        problem_found: VersionProblem | None = "backwards"
        if kind == "none":
            suggested = old_text
    elif new_version == old_version:
        problem_found = None if kind == "none" else "unchanged"
    elif old_version.prerelease:
        problem_found = None  # a pre-release promises nothing
    else:
        got = bump_between(old_version, new_version)
        problem_found = "too-small" if _BUMPS.index(got) < _BUMPS.index(need) else None
    return Change(kind, tuple(reasons), old_text, new_text, need, suggested, problem_found)
