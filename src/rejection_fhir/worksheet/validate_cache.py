"""A cache of ``validate`` results, so an unchanged worksheet is checked in milliseconds.

Content authors run ``validate`` from pre-commit on every commit, and most commits touch
one worksheet or none.  The checks themselves are quick; importing what they need
(fhir.resources and pydantic, jsonschema, PyYAML, fhirpathpy) is not: about six times
``import click``.  So when nothing that could change the answer has changed, the stored
findings are printed without importing any of it.

The key covers everything the findings depend on: the tool's own code (file sizes and
modification times), the schemas, every file in each worksheet folder validated (a
worksheet is checked with its folder's _project.yaml), each JSON file, the canonical base,
and the working directory (findings name files relative to it).  Entries live under
``$XDG_CACHE_HOME/rejection-fhir`` (or ``~/.cache``); ``RFHIR_NO_CACHE=1`` turns it off.

A hit must stay far cheaper than the checks, so a hit imports the standard library's
``os`` and the builtin BLAKE2 only: no pathlib, hashlib (OpenSSL), json or findings
module for a clean answer, the usual one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

try:
    from _blake2 import blake2b  # hashlib.blake2b itself, without loading OpenSSL
except ImportError:  # pragma: no cover - a Python built without its own hashes
    from hashlib import blake2b

if TYPE_CHECKING:
    from rejection_fhir.findings import Finding

#: The package folder: this module is in its worksheet/ folder.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_FORMAT = 2
_CODE = (".py", ".json", ".yaml")
_SOURCES = (".yaml", ".yml")
#: What a worksheet folder's findings depend on: YAML, and forms authored elsewhere (JSON).
_FOLDER_FILES = (*_SOURCES, ".json")


def enabled() -> bool:
    return os.environ.get("RFHIR_NO_CACHE", "").lower() not in {"1", "true", "yes"}


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "rejection-fhir", "validate")


def _code_stats(package: str = _PACKAGE) -> list[str]:
    """``path:size:mtime`` of every code, schema and data file of the package, sorted.

    Linked folders are followed: in a development checkout data/schemas and
    data/questionnaires link to the repository's top level.  Caches (``__pycache__``, dot
    folders such as .mypy_cache) hold no code.
    """
    lines = []
    seen: set[tuple[int, int]] = set()
    pending = [""]
    while pending:
        relative = pending.pop()
        folder = os.path.join(package, relative)
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:
            continue  # a link back up the tree
        seen.add((stat.st_dev, stat.st_ino))
        with os.scandir(folder) as entries:
            for entry in entries:
                name = os.path.join(relative, entry.name)
                if entry.is_dir():
                    if entry.name != "__pycache__" and not entry.name.startswith("."):
                        pending.append(name)
                elif entry.name.endswith(_CODE) and entry.is_file():
                    stat = entry.stat()
                    lines.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
    return sorted(lines)


def _add_file(digest: blake2b, path: str) -> None:
    digest.update(f"file:{os.path.realpath(path)}\n".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read())


def key(paths: Sequence[str | os.PathLike[str]], base_url: str | None) -> str | None:
    """The cache key for validating ``paths``, or None when they cannot be cached."""
    from rejection_fhir import __version__

    given = [os.fspath(p) for p in paths]
    digest = blake2b(
        f"{_FORMAT}|{__version__}|{base_url}|{os.getcwd()}|{given}\n".encode(), digest_size=32
    )
    if not given:
        # validate's default: ./questionnaires in a content repository (what the pre-commit
        # hook checks), else the worksheets we ship.  Key on both rather than import the
        # rule that picks one; without ./questionnaires there is no caching.
        given = ["questionnaires", os.path.join(_PACKAGE, "data", "questionnaires")]
    try:
        digest.update("".join(f"{line}\n" for line in _code_stats()).encode())
        folders: set[str] = set()
        for path in given:
            suffix = os.path.splitext(path)[1]
            if os.path.isdir(path):
                folders.add(os.path.realpath(path))
            elif (suffix in _SOURCES and os.path.isfile(path)) or (
                suffix == ".json"
                and os.path.isfile(path)
                and os.path.isfile(os.path.join(os.path.dirname(path) or ".", "_project.yaml"))
            ):
                folders.add(os.path.dirname(os.path.realpath(path)))
            elif suffix == ".json" and os.path.isfile(path):
                _add_file(digest, path)
            else:
                return None  # let validate report what is wrong with it
        for folder in sorted(folders):
            for name in sorted(os.listdir(folder)):
                item = os.path.join(folder, name)
                if name.endswith(_FOLDER_FILES) and os.path.isfile(item):
                    _add_file(digest, item)
    except OSError:
        return None
    return digest.hexdigest()


def load(cache_key: str) -> list[Finding] | None:
    try:
        with open(os.path.join(cache_dir(), f"{cache_key}.json"), encoding="utf-8") as handle:
            text = handle.read()
        if text == "[]":
            return []  # clean, the usual answer: no need to import json or the findings
        import json

        from rejection_fhir.findings import Finding

        return [Finding(**entry) for entry in json.loads(text)]
    except (OSError, ValueError, TypeError):
        return None  # missing or damaged: validate afresh


def store(cache_key: str, findings: Sequence[Finding]) -> None:
    import json
    import tempfile  # only on a miss: it is slow to import
    from dataclasses import asdict

    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump([asdict(f) for f in findings], handle)
        os.replace(tmp, os.path.join(folder, f"{cache_key}.json"))
    except OSError:
        pass  # a read-only home or full disk only costs speed
