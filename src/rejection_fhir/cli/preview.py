"""``rejection-fhir preview``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rejection_fhir.cli.options import BASE_URL_OPTION, source_option, source_or_default


@click.command("preview")
@click.argument("name", required=False)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0 picks a free one).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option(
    "--install-lforms",
    is_flag=True,
    help="First fetch LHC-Forms (pinned version, checksum checked) from npm into your cache "
    "folder; needed once.",
)
@source_option
@BASE_URL_OPTION
def preview_cmd(
    name: str | None,
    port: int,
    open_browser: bool,
    install_lforms: bool,
    source_dir: Path | None,
    base_url: str | None,
) -> None:
    """Serve the worksheets on 127.0.0.1, rendered by LHC-Forms from local files (offline).

    NAME is a worksheet name (rejection-log) or its FHIR name (RejectionLog).  Pages are
    rebuilt when a source changes: save the YAML and reload the page.  The first time,
    add --install-lforms to fetch LHC-Forms.

    \b
    Example:
      rejection-fhir preview rejection-log --install-lforms --open
    """
    from rejection_fhir.commands.build import build_all
    from rejection_fhir.preview import LFORMS_FILES, folder_stamp, run_preview

    if install_lforms:
        from rejection_fhir.cli.options import status
        from rejection_fhir.lforms_install import LFORMS_VERSION, install

        status(f"LHC-Forms {LFORMS_VERSION} in {install(tuple(LFORMS_FILES))}")

    folder = source_or_default(source_dir)

    def load() -> list[dict[str, Any]]:
        return build_all(folder, base_url=base_url)[0].questionnaires

    run_preview(
        load(), name, port, open_browser=open_browser, reload=(load, lambda: folder_stamp(folder))
    )
