"""Options and helpers shared by several commands' shims.

pathlib is imported only by the decorators that need it: ``validate`` takes only
``BASE_URL_OPTION`` from here, and its cached answer needs no pathlib (about a tenth of
``import click``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from click.decorators import FC


def worksheet_folder_option(flag: str) -> Callable[[FC], FC]:
    """``flag``: the folder of worksheet sources, given to the command as ``source_dir``."""

    def decorate(f: FC) -> FC:
        from pathlib import Path

        return click.option(
            flag,
            "source_dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="RFHIR_SOURCE",
            default=None,
            help="Folder of worksheet sources (default: ./questionnaires, else the bundled worksheets). Env: RFHIR_SOURCE.",
        )(f)

    return decorate


source_option = worksheet_folder_option("--source")


BASE_URL_OPTION = click.option(
    "--base-url",
    envvar="RFHIR_BASE_URL",
    default=None,
    help="Canonical base for url of built resources (default: canonicalBase in _project.yaml). Env: RFHIR_BASE_URL.",
)


def format_option(choices: list[str], help: str | None = None) -> Callable[[FC], FC]:
    """``--format``: one of ``choices``, the first by default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help=help,
    )


def file_option(*decls: str, help: str, **extra: Any) -> Callable[[FC], FC]:
    """A file flag (None unless given, or ``extra``'s default), given as a Path."""
    from pathlib import Path

    extra.setdefault("default", None)
    return click.option(*decls, type=click.Path(dir_okay=False, path_type=Path), help=help, **extra)


def server_options(f: Any) -> Any:
    """Connection flags shared by every command that talks to a FHIR server.

    Secrets are deliberately absent: they come from RFHIR_TOKEN(_FILE) and friends, or
    from --token-file, never from a flag's value (shell history, ``ps``).
    """
    options = [
        click.option("--server", default=None, help="FHIR base URL. Env: RFHIR_SERVER."),
        file_option(
            "--config", help="Config file (default: rejection-fhir.toml). Env: RFHIR_CONFIG."
        ),
        file_option("--token-file", help="File holding a bearer token. Env: RFHIR_TOKEN_FILE."),
        file_option("--ca-bundle", help="PEM bundle of private CAs. Env: RFHIR_CA_BUNDLE."),
        click.option(
            "--insecure",
            is_flag=True,
            default=None,
            help="Allow plain http:// to a host that is not loopback.",
        ),
        click.option(
            "--timeout",
            type=float,
            default=None,
            help="Read timeout in seconds. Env: RFHIR_TIMEOUT.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def settings_from(**flags: Any) -> Any:
    """The settings, with the flags given (not None) overriding env and config file."""
    from pathlib import Path

    from rejection_fhir.settings import load_settings

    overrides = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in flags.items() if v is not None
    }
    return load_settings(overrides)


def source_or_default(source_dir: Path | None) -> Path:
    from rejection_fhir.worksheet.project import default_source_dir

    return source_dir if source_dir is not None else default_source_dir()


def built_worksheets(source_dir: Path | None, base_url: str | None) -> list[dict[str, Any]]:
    """The built Questionnaires, with their worksheet summarizers registered."""
    from rejection_fhir.commands.build import build_all
    from rejection_fhir.response.worksheets import register_worksheets

    result, _ = build_all(source_or_default(source_dir), base_url=base_url)
    register_worksheets(result.questionnaires)
    return result.questionnaires
