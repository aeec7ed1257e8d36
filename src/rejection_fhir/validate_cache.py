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
Imports here are the standard library's only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rejection_fhir.findings import Finding

_PACKAGE = Path(__file__).resolve().parent
_FORMAT = 1


def enabled() -> bool:
    return os.environ.get("RFHIR_NO_CACHE", "").lower() not in {"1", "true", "yes"}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rejection-fhir" / "validate"


def _code_fingerprint(digest: hashlib._Hash) -> None:
    for path in sorted(_PACKAGE.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".json", ".yaml"}:
            stat = path.stat()
            digest.update(
                f"{path.relative_to(_PACKAGE)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode()
            )


def _add_file(digest: hashlib._Hash, path: Path) -> None:
    digest.update(f"file:{path.resolve()}\n".encode())
    digest.update(path.read_bytes())


def key(paths: Sequence[Path], base_url: str | None) -> str | None:
    """The cache key for validating ``paths``, or None when they cannot be cached."""
    from rejection_fhir import __version__

    digest = hashlib.sha256(
        f"{_FORMAT}|{__version__}|{base_url}|{Path.cwd()}|{[str(p) for p in paths]}\n".encode()
    )
    _code_fingerprint(digest)
    if not paths:
        # validate's default: ./questionnaires in a content repository (what the pre-commit
        # hook checks), else the worksheets we ship.  Key on both rather than import the
        # rule that picks one; without ./questionnaires there is no caching.
        paths = [Path("questionnaires"), _PACKAGE / "data" / "questionnaires"]
    try:
        folders: set[Path] = set()
        for path in paths:
            if path.is_dir():
                folders.add(path.resolve())
            elif path.suffix in {".yaml", ".yml"}:
                folders.add(path.resolve().parent)
            elif path.suffix == ".json" and path.is_file():
                _add_file(digest, path)
            else:
                return None  # let validate report what is wrong with it
        for folder in sorted(folders):
            for item in sorted(folder.iterdir()):
                if item.is_file() and item.suffix in {".yaml", ".yml"}:
                    _add_file(digest, item)
    except OSError:
        return None
    return digest.hexdigest()


def load(cache_key: str) -> list[Finding] | None:
    try:
        raw = json.loads((cache_dir() / f"{cache_key}.json").read_text(encoding="utf-8"))
        return [Finding(**entry) for entry in raw]
    except (OSError, ValueError, TypeError):
        return None  # missing or damaged: validate afresh


def store(cache_key: str, findings: Sequence[Finding]) -> None:
    import tempfile  # only on a miss: it is slow to import

    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump([asdict(f) for f in findings], handle)
        os.replace(tmp, folder / f"{cache_key}.json")
    except OSError:
        pass  # a read-only home or full disk only costs speed
