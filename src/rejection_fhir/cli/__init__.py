"""The ``rejection-fhir`` command line: thin click shims over ``rejection_fhir.commands``.

Start-up time matters (authors run ``validate`` in pre-commit hooks), so this module holds
only the root group and ``main``; each command's shim is its own module here, imported when
that command is run (or asked for its help).  Root ``--help`` lists the commands from
:data:`COMMANDS` without importing any of them.  Command modules, jsonschema,
fhir.resources and requests are imported inside the commands, never at start-up.
"""

from __future__ import annotations

import sys
from gettext import gettext as _
from typing import TYPE_CHECKING, Any, NoReturn

import click

from rejection_fhir import __version__

if TYPE_CHECKING:
    from rejection_fhir.errors import RejectionFhirError

#: Every command: its name -> (its module under ``rejection_fhir.cli``, its short help).
#: The short help is what ``get_short_help_str`` gives (the docstring's first sentence);
#: tests/unit/cli/test_lazy_group.py keeps the two the same.  The command object in
#: module ``m`` for command ``n`` is ``n.replace("-", "_") + "_cmd"``.
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("build", "Build every worksheet into FHIR R4 JSON and one transaction Bundle."),
    "check-server": (
        "check_server",
        "Say what a FHIR server can do for this tool, and how publish and sync will work with it.",
    ),
    "list": ("listing", "List the worksheets: name, version, status, questions and title."),
    "preview": (
        "preview",
        "Serve the worksheets on 127.0.0.1, rendered by LHC-Forms from local files (offline).",
    ),
    "publish": (
        "publish",
        "Publish the built Questionnaires, CodeSystem and ValueSets in one transaction.",
    ),
    "report": (
        "report",
        "Write a clinician's progress report for one client: safety flags, PHQ-9/GAD-7 and "
        "worksheet trends as charts, and the worksheet summaries, newest first.",
    ),
    "seed": ("seed", "Create a synthetic client with realistic responses on a local test server."),
    "show": ("show", "Show one worksheet as an outline (or as its Questionnaire JSON)."),
    "smart-keygen": (
        "smart_keygen",
        "Make a key pair for SMART Backend Services: keep smart-key.pem, register jwks.json.",
    ),
    "summarize": (
        "summarize",
        "Summarise QuestionnaireResponses from JSON, NDJSON or Bundle files "
        "('-' reads NDJSON from stdin).",
    ),
    "sync": (
        "sync",
        "Fetch new QuestionnaireResponses, validate and summarise them, write notes, "
        "Observations and Provenance to the EHR, exactly once.",
    ),
    "validate": ("validate", "Check worksheet folders, YAML sources or built Questionnaire JSON."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when resolved (click's LazyGroup pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        from importlib import import_module

        module = import_module(f"{__name__}.{COMMANDS[cmd_name][0]}")
        command: click.Command = getattr(module, f"{cmd_name.replace('-', '_')}_cmd")
        _add_verbosity(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, from the table: listing the commands imports none of them."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                # A help-only stand-in shortens the text exactly as click shortens a command's.
                stand_in = click.Command(name, help=COMMANDS[name][1])
                rows.append((name, stand_in.get_short_help_str(limit)))
            else:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section(_("Commands")):
                formatter.write_dl(rows)


#: Keys in the root context's ``meta`` for -v (a count) and -q, wherever they were given.
VERBOSE = "rejection_fhir.verbose"
QUIET = "rejection_fhir.quiet"


def _verbosity(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """-v/-q before or after the command name mean the same: one setting for the run."""
    if not value:
        return
    root = ctx.find_root()
    if param.name == "quiet":
        root.meta[QUIET] = True
    else:
        root.meta[VERBOSE] = root.meta.get(VERBOSE, 0) + int(value)
    import logging  # only when asked for: start-up time matters (see the module docstring)

    verbose = root.meta.get(VERBOSE, 0)
    level = logging.ERROR if root.meta.get(QUIET) else logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    # urllib3 logs whole URLs, query values included, at DEBUG: they can name a client.
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, level))


def _verbosity_options() -> list[click.Option]:
    return [
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_verbosity,
            help="More detail on stderr: -v what is done, -vv debug (never tokens or "
            "clients' answers).",
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_verbosity,
            help="Only problems on stderr: no progress or summary lines.",
        ),
    ]


def _add_verbosity(command: click.Command) -> None:
    """Every command takes -v/-q after its name too (``validate -v``)."""
    if not any(p.name == "verbose" for p in command.params):
        command.params.extend(_verbosity_options())


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rejection-fhir")
def cli() -> None:
    """Coping-with-rejection worksheets as FHIR R4 Questionnaires: author, build, validate, publish, sync.

    Each command's --help shows an example.  -v/-q work before or after the command.

    \b
    Example:
      rejection-fhir validate questionnaires && rejection-fhir build --out out
    """


_add_verbosity(cli)


def _fail(error: RejectionFhirError) -> NoReturn:
    click.echo(f"error: {error}", err=True)
    sys.exit(int(error.exit_code))


def main(argv: list[str] | None = None) -> Any:
    try:
        result = cli.main(args=argv, prog_name="rejection-fhir", standalone_mode=False)
        # Output still buffered fails here (a full disk), not silently at exit.
        sys.stdout.flush()
        return result
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        from rejection_fhir.errors import ExitCode

        error.show()
        sys.exit(ExitCode.USAGE if error.exit_code == 2 else error.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except RecursionError:
        # json and YAML parsers recurse per nesting level; a hostile file can exhaust the stack.
        from rejection_fhir.errors import InputError

        _fail(
            InputError(
                "an input is nested too deeply to read (thousands of levels); no FHIR "
                "resource or worksheet nests like that",
                hint="check that the file is the one you meant; it may be damaged or hostile",
            )
        )
    except MemoryError:
        from rejection_fhir.errors import InputError

        _fail(InputError("ran out of memory reading the input; it is too large to process"))
    except Exception as error:
        # rejection_fhir.errors is imported only when something failed: a clean run of a
        # command that raises none (validate from its cache) does not pay for it.  No
        # RejectionFhirError is also one of the exceptions handled above.
        from rejection_fhir.errors import RejectionFhirError

        if isinstance(error, RejectionFhirError):
            _fail(error)
        if isinstance(error, OSError) and error.filename is None and _stdout_broken(error):
            _stdout_failed(error)
        _internal(error)


def _stdout_broken(error: OSError) -> bool:
    """Whether ``error`` (naming no file) is standard output failing: a full disk, a quota,
    an I/O error.  Every file we write names itself; only a stream write names none."""
    import errno

    return error.errno in {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS}


def _stdout_failed(error: OSError) -> NoReturn:
    import os

    from rejection_fhir.errors import OutputError

    try:
        # What is still buffered would fail again at exit, with a traceback-like notice.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    _fail(
        OutputError(
            f"cannot write to standard output ({error.strerror or type(error).__name__})",
            hint="free some disk space, or redirect the output elsewhere",
        )
    )


def _internal(error: Exception) -> NoReturn:
    """Our bug: say where, never what (exception text can quote a client's answers)."""
    import os.path
    import traceback

    from rejection_fhir.errors import ExitCode

    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "rejection_fhir" in f.filename] or frames
    where = ""
    if ours:
        last = ours[-1]
        where = f" at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"
    click.echo(
        f"error: internal error (please report): {type(error).__name__}{where}\n"
        "  hint: this is a bug in rejection-fhir, not in your input or server; report it "
        "with the command you ran (leave out clients' data)",
        err=True,
    )
    sys.exit(int(ExitCode.INTERNAL))
