"""Semantic versions (``MAJOR.MINOR.PATCH[-pre][+build]``), one precedence rule for the
project: ``publish`` (which older versions to retire) and the version guard (which bump a
change needs) both compare versions here.

Precedence is semver 2.0.0 §11: a pre-release sorts before its release
(``1.1.0-rc.1 < 1.1.0``), numeric identifiers compare as numbers and before alphanumeric
ones (``rc.2 < rc.10 < rc.a``); build metadata is ignored.  Anything that is not a
semantic version parses to None: callers decide what an unreadable version means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

Bump = Literal["none", "patch", "minor", "major"]
BUMPS: tuple[Bump, ...] = ("none", "patch", "minor", "major")

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+.*)?$")


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    def __str__(self) -> str:
        pre = "-" + ".".join(str(p) for p in self.prerelease) if self.prerelease else ""
        return f"{self.major}.{self.minor}.{self.patch}{pre}"

    def _key(self) -> tuple[Any, ...]:
        # Semver precedence: a pre-release sorts before its release; numeric identifiers
        # sort numerically and before alphanumeric ones.
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Version) -> bool:
        return self._key() <= other._key()


def parse_version(text: object) -> Version | None:
    """``1.2.3`` or ``1.2.3-rc.1`` (build metadata ignored); None for anything else."""
    if not isinstance(text, str):
        return None
    match = _SEMVER.match(text.strip())
    if not match:
        return None
    pre = tuple(int(p) if p.isdigit() else p for p in (match.group(4) or "").split(".") if p)
    return Version(int(match.group(1)), int(match.group(2)), int(match.group(3)), pre)


def is_semver(text: object) -> bool:
    """``MAJOR.MINOR.PATCH[-pre]`` exactly, as a version must be written in a worksheet:
    no build metadata (it would not change precedence, so two "versions" would collide) and
    no surrounding whitespace."""
    return (
        isinstance(text, str)
        and "+" not in text
        and text == text.strip()
        and parse_version(text) is not None
    )


def is_older(candidate: object, current: object) -> bool:
    """``candidate`` sorts before ``current``; False when either is not a semantic version."""
    a, b = parse_version(candidate), parse_version(current)
    return a is not None and b is not None and a < b


def bump_between(old: Version, new: Version) -> Bump:
    """Which part grew from ``old`` to ``new`` (``none`` when only a pre-release part did)."""
    if new.major != old.major:
        return "major"
    if new.minor != old.minor:
        return "minor"
    if new.patch != old.patch:
        return "patch"
    return "none"
