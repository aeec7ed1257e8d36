"""``rejection-fhir preview``."""

from __future__ import annotations

from pathlib import Path

import click

from rejection_fhir.cli.options import BASE_URL_OPTION, source_or_default, worksheets_option


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
@worksheets_option
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
    from rejection_fhir.cli.options import status
    from rejection_fhir.commands.preview import preview

    preview(
        source_or_default(source_dir),
        name,
        port=port,
        open_browser=open_browser,
        base_url=base_url,
        install=install_lforms,
        status=status,
    )
