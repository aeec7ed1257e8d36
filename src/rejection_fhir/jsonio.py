"""How the project writes FHIR JSON to disk: stable bytes, and all-or-nothing folders."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def dumps(resource: Any) -> str:
    """Stable, reviewable JSON: the same resource always gives the same bytes."""
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def write_folder(
    out_dir: Path, files: Mapping[str, str | bytes], *, owned: Iterable[str] = ()
) -> None:
    """Write ``files`` (name → text, or bytes) into ``out_dir`` so that a reader never sees
    half a build.

    Everything is staged in a sibling temporary folder first.  A new folder is moved into
    place in one rename; an existing one gets each file replaced atomically, and files we
    wrote before (matching the ``owned`` glob patterns) that are no longer built are removed.
    """
    given = out_dir
    out_dir = out_dir.resolve()
    try:
        _write_folder(out_dir, files, owned)
    except OSError as exc:
        # The disk or the path is the problem, not us: name it and the system's reason.
        from rejection_fhir.errors import output_error

        raise output_error(given, exc, what="cannot write the output folder") from None


def _write_folder(out_dir: Path, files: Mapping[str, str | bytes], owned: Iterable[str]) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(out_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, text in files.items():
            if isinstance(text, bytes):
                (staging / name).write_bytes(text)
            else:
                (staging / name).write_text(text, encoding="utf-8")
        if not out_dir.exists():
            os.rename(staging, out_dir)
            return
        stale = {p.name for pattern in owned for p in out_dir.glob(pattern)} - set(files)
        for name in files:
            os.replace(staging / name, out_dir / name)
        for name in stale:
            (out_dir / name).unlink(missing_ok=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
