"""One exception root, with actionable messages, and the registry of exit codes.

Every failure a user can cause or meet is a :class:`RejectionFhirError` subclass whose
``exit_code`` comes from :class:`ExitCode`.  The CLI prints ``str(error)`` (one clear
message naming the file, resource or linkId and what to do) and exits with that code;
no traceback reaches a clinician or a CI log.

Exit codes are part of the public interface: scripts and CI jobs branch on them.  A code
is never reused for a different meaning; a retired code stays in the registry, marked
retired, so nobody hands it out again.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, ClassVar


class ExitCode(IntEnum):
    """Registry of process exit codes.  Append only; retire, never reuse."""

    OK = 0
    #: ``validate`` found problems in the content (or ``sync`` rejected a response).
    FINDINGS = 1
    #: Wrong flags or arguments (click's own usage errors use 2 as well).
    USAGE = 2
    #: A worksheet source cannot be read or does not match the schema.
    SOURCE = 3
    #: Configuration is missing or contradictory (server URL, credentials, files).
    CONFIG = 4
    #: The FHIR server refused a request (4xx, OperationOutcome) and retrying cannot help.
    SERVER_REFUSED = 5
    #: The server could not be reached or kept failing after the retries.
    SERVER_UNAVAILABLE = 6
    #: The server holds different content under the same url|version.
    VERSION_CONFLICT = 7
    #: Another run holds the sync state lock.
    BUSY = 8
    #: Authentication or authorisation failed (401/403, token endpoint).
    AUTH = 9
    #: An input file (response, bundle, NDJSON) is malformed.
    INPUT = 10
    #: A content change needs a new version (version guard).
    VERSION_GUARD = 11
    #: ``check-server`` / ``sync``: the server cannot do what sync needs (find responses,
    #: write the note); sync stops before writing anything.
    SERVER_CANNOT = 12
    #: ``sync``: a write's answer was lost where nothing can tell whether it landed
    #: (ledger-only mode); recorded as uncertain, settled by ``sync --reconcile``.
    UNCERTAIN = 13
    #: An output file, folder or standard output cannot be written (disk full, read-only,
    #: no permission, a file where a folder should be); nothing was half-written.
    OUTPUT = 14
    #: ``publish``: the server takes no Questionnaires (the EHR loads forms with its own tools).
    NO_FORMS = 15
    #: Something broke that is our fault; please report it.
    INTERNAL = 70


class RejectionFhirError(Exception):
    """Root of every error this tool reports to a person."""

    exit_code: ClassVar[ExitCode] = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(RejectionFhirError):
    exit_code = ExitCode.USAGE


class SourceError(RejectionFhirError):
    """A worksheet source (YAML) is unreadable or invalid.  ``findings`` lists each problem."""

    exit_code = ExitCode.SOURCE

    def __init__(
        self, message: str, *, findings: list[Any] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.findings = findings or []


class ConfigError(RejectionFhirError):
    exit_code = ExitCode.CONFIG


class InputError(RejectionFhirError):
    """A response, Bundle or NDJSON file handed to us is malformed."""

    exit_code = ExitCode.INPUT


class FhirServerError(RejectionFhirError):
    """The server answered with an error.  Built from its OperationOutcome where it sent one."""

    exit_code = ExitCode.SERVER_REFUSED

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        outcome: dict[str, Any] | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.outcome = outcome
        #: Seconds the server asked us to wait (its ``Retry-After``), when it said.
        self.retry_after = retry_after


class ServerUnavailableError(FhirServerError):
    """Connection failures, timeouts and retryable statuses that outlasted the retries."""

    exit_code = ExitCode.SERVER_UNAVAILABLE


class AuthError(FhirServerError):
    exit_code = ExitCode.AUTH


class VersionConflictError(RejectionFhirError):
    exit_code = ExitCode.VERSION_CONFLICT


class StateBusyError(RejectionFhirError):
    exit_code = ExitCode.BUSY


class LeaseLostError(StateBusyError):
    """Another run took this run's shard over (its lease expired): nothing more is recorded.

    Same exit code as a busy shard (8): the shard is another run's now.
    """


class OutputError(RejectionFhirError):
    """An output cannot be written: the message names the path and the system's reason."""

    exit_code = ExitCode.OUTPUT


def output_error(path: object, exc: OSError, *, what: str = "cannot write") -> OutputError:
    """``{path}: cannot write ({reason})``, naming the part of the path that is in the way."""
    import errno
    from pathlib import Path

    reason = exc.strerror or type(exc).__name__
    target = Path(str(path))
    if exc.errno in {errno.EEXIST, errno.ENOTDIR}:
        # A file where a folder should be: say which one.
        for parent in [target, *target.parents]:
            if parent.exists() and not parent.is_dir():
                return OutputError(
                    f"{path}: {what}: {parent} is a file, not a directory",
                    hint="choose another output path, or move that file away",
                )
    hints = {
        errno.ENOSPC: "free some disk space, or write elsewhere",
        errno.EACCES: "choose a folder you may write to",
        errno.EPERM: "choose a folder you may write to",
        errno.EROFS: "choose a folder on a writable file system",
    }
    return OutputError(
        f"{path}: {what} ({reason})",
        hint=hints.get(exc.errno or 0, "choose another output path"),
    )


class ServerCannotError(RejectionFhirError):
    """What the server states rules out the job (no note can be written); nothing was
    written.  The same verdict, and exit code, as ``check-server``'s."""

    exit_code = ExitCode.SERVER_CANNOT


class FormsNotAcceptedError(RejectionFhirError):
    """The server does not take Questionnaires over FHIR; nothing was written."""

    exit_code = ExitCode.NO_FORMS
