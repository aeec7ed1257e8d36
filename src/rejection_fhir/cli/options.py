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


#: The worksheet folder's environment variable, and the one it replaces (still read, with a
#: warning, for one release: "source" also named a FHIR server and a YAML file).
WORKSHEETS_ENV = "RFHIR_WORKSHEETS"
DEPRECATED_WORKSHEETS_ENV = "RFHIR_SOURCE"


def deprecation_warning(ctx: click.Context, old: str, new: str) -> None:
    """Say once per run on stderr that ``old`` (a flag or variable) is now ``new``."""
    said = ctx.find_root().meta.setdefault("rejection_fhir.deprecated", set())
    if old not in said:
        said.add(old)
        click.echo(
            f"warning: {old} is deprecated and will be removed in the next release; use {new}",
            err=True,
        )


def deprecated_alias(old: str, new: str, name: str, **option: Any) -> Callable[[FC], FC]:
    """``old``: the former spelling of the option ``new`` (whose parameter is ``name``),
    kept for one release.  Hidden from --help; given, it warns on stderr naming ``new`` and
    its value goes to ``name`` unless ``new`` itself was given on the command line.

    ``new`` must be declared with ``callback=takes_deprecated_alias``; ``option`` is the
    rest of its declaration (the type), so both spellings read a value the same way.
    """

    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or ctx.resilient_parsing:
            return
        deprecation_warning(ctx, old, new)
        # Given on the command line, this is processed before ``new`` unless ``new`` was
        # given too (then the new spelling wins): ``new``'s callback takes the value.
        ctx.meta[f"rejection_fhir.alias.{name}"] = value

    return click.option(
        old,
        f"deprecated_{name}",
        hidden=True,
        expose_value=False,
        default=None,
        callback=remember,
        help=f"Deprecated: use {new}.",
        **option,
    )


def takes_deprecated_alias(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """The callback of an option with a :func:`deprecated_alias`: the alias's value when
    this option was not itself given on the command line."""
    from click.core import ParameterSource

    name = str(param.name)
    source = ctx.get_parameter_source(name)
    key = f"rejection_fhir.alias.{name}"
    if source is not ParameterSource.COMMANDLINE and key in ctx.meta:
        return ctx.meta[key]
    return value


def _worksheets_from_env(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    import os

    from click.core import ParameterSource

    value = takes_deprecated_alias(ctx, param, value)
    if (
        ctx.get_parameter_source(str(param.name)) is ParameterSource.ENVIRONMENT
        and f"rejection_fhir.alias.{param.name}" not in ctx.meta
        and not os.environ.get(WORKSHEETS_ENV)
        and not ctx.resilient_parsing
    ):
        deprecation_warning(ctx, DEPRECATED_WORKSHEETS_ENV, WORKSHEETS_ENV)
    return value


def worksheet_folder_option(flag: str, *deprecated: str) -> Callable[[FC], FC]:
    """``flag``: the folder of worksheet sources, given to the command as ``source_dir``;
    ``deprecated``: former spellings, still taken for one release (see
    :func:`deprecated_alias`)."""

    def decorate(f: FC) -> FC:
        from pathlib import Path

        kind = click.Path(file_okay=False, path_type=Path)
        for old in deprecated:
            f = deprecated_alias(old, flag, "source_dir", type=kind)(f)
        formerly = f" (formerly {', '.join(deprecated)}, deprecated)" if deprecated else ""
        return click.option(
            flag,
            "source_dir",
            type=kind,
            # RFHIR_SOURCE still works for one release, with a warning.
            envvar=[WORKSHEETS_ENV, DEPRECATED_WORKSHEETS_ENV],
            default=None,
            callback=_worksheets_from_env,
            help="Folder of worksheet sources (default: ./questionnaires, else the bundled "
            f"worksheets). Env: {WORKSHEETS_ENV}.{formerly}",
        )(f)

    return decorate


#: ``--worksheets DIR``, the worksheet folder; ``--source`` was its name before "source" also
#: meant a FHIR server (``sync --source-server``).
worksheets_option = worksheet_folder_option("--worksheets", "--source")


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

    if source_dir is not None:
        detail(f"worksheets from {source_dir}")
        return source_dir
    announce_default_source()
    return default_source_dir()


def built_worksheets(source_dir: Path | None, base_url: str | None) -> list[dict[str, Any]]:
    """The built Questionnaires."""
    from rejection_fhir.commands.build import build_all

    result, _ = build_all(source_or_default(source_dir), base_url=base_url)
    return result.questionnaires


def built_catalog(source_dir: Path | None, base_url: str | None) -> Any:
    """The catalog of the built worksheets (``worksheet.catalog.Catalog``), built once."""
    from rejection_fhir.commands.build import build_all
    from rejection_fhir.worksheet.catalog import catalog_from_build

    result, _ = build_all(source_or_default(source_dir), base_url=base_url)
    return catalog_from_build(result)


# --- Output for people on stderr: -q silences it, -v adds to it ---------------------------


def _root_meta() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta if ctx is not None else {}


def verbosity() -> int:
    """-1 with -q, else the number of -v given (before or after the command name)."""
    from rejection_fhir.cli import QUIET, VERBOSE

    meta = _root_meta()
    return -1 if meta.get(QUIET) else int(meta.get(VERBOSE, 0))


def status(message: str) -> None:
    """A progress or summary line for a person (stderr; stdout stays for data); not with -q."""
    if verbosity() >= 0:
        click.echo(message, err=True)


def detail(message: str) -> None:
    """What is being done, shown with -v."""
    if verbosity() >= 1:
        click.echo(message, err=True)


def bundled_source_dir() -> str:
    """The worksheets shipped inside the package (without importing pathlib)."""
    import os.path

    import rejection_fhir

    return os.path.join(os.path.dirname(rejection_fhir.__file__), "data", "questionnaires")


def announce_default_source() -> None:
    """Say on stderr which worksheets a command without --worksheets reads: ./questionnaires,
    or (said always, as it surprises) the bundled ones."""
    import os.path

    if os.path.isfile(os.path.join("questionnaires", "_project.yaml")):
        detail("worksheets from ./questionnaires")
    else:
        status(
            "note: no ./questionnaires here; using the worksheets bundled with rejection-fhir "
            f"({bundled_source_dir()}); pass a folder (--worksheets DIR) for your own"
        )
