"""``rejection-fhir preview``: serve the worksheets on 127.0.0.1, rebuilt when a source changes.

The pages and the server are :mod:`rejection_fhir.preview`; this puts them together with
the build: LHC-Forms fetched first if asked, then the folder built on each change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def install_lforms() -> str:
    """Fetch the pinned LHC-Forms into the user's cache folder; say which and where."""
    from rejection_fhir.preview.lforms_install import LFORMS_VERSION, install
    from rejection_fhir.preview.page import LFORMS_FILES

    return f"LHC-Forms {LFORMS_VERSION} in {install(tuple(LFORMS_FILES))}"


def preview(
    folder: Path,
    name: str | None = None,
    *,
    port: int = 8765,
    open_browser: bool = False,
    base_url: str | None = None,
    install: bool = False,
    status: Callable[[str], None] = print,
) -> None:
    """Serve the worksheets built from ``folder`` until Ctrl-C, rebuilding on each change.

    ``name`` (a worksheet or FHIR name) makes the printed URL that worksheet's page.
    ``install`` first fetches LHC-Forms (see :func:`install_lforms`), said via ``status``.
    """
    from rejection_fhir.commands.build import build_all
    from rejection_fhir.preview.server import folder_stamp, run_preview

    if install:
        status(install_lforms())

    def load() -> list[dict[str, Any]]:
        return build_all(folder, base_url=base_url)[0].questionnaires

    run_preview(
        load(), name, port, open_browser=open_browser, reload=(load, lambda: folder_stamp(folder))
    )
