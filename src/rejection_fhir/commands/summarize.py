"""``rejection-fhir summarize``: clinician summaries of responses in files, offline.

Streams: NDJSON is read a line at a time and each summary is written as soon as it is
made, so memory stays flat however many responses a file holds.  A JSON file (one
response, a Bundle or an array) is parsed whole, and so is standard input whose first
line is not a JSON value (a pretty-printed document piped in).

What would make a summary misleading is said beside it, as a warning (the summary is still
written): answers outside the item's minValue/maxValue (``42`` on a 0-10 scale), of the
wrong type for the item, not among its options, or held by an item without a linkId; and
``--questionnaire`` files that no response used (a wrong url or version in the file would
otherwise go unnoticed, the responses being summarised from their own texts).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

import orjson

from rejection_fhir.errors import InputError
from rejection_fhir.response.questionnaire import QuestionnaireIndex, split_canonical
from rejection_fhir.response.render import render_json, render_markdown, render_text, render_xhtml
from rejection_fhir.response.summary import Summary
from rejection_fhir.scoring.analysis import analyse
from rejection_fhir.worksheet.catalog import Catalog

JsonDict = dict[str, Any]

RENDERERS: dict[str, Callable[[Summary], str]] = {
    "text": render_text,
    "markdown": render_markdown,
    "xhtml": render_xhtml,
    # orjson: several times faster than json.dumps, which cost more than the summary itself.
    "json": lambda s: orjson.dumps(render_json(s)).decode(),
}


#: Conformance findings that change how a summary reads, reported as warnings beside it.
READER_WARNINGS = frozenset(
    {
        "answer-type",
        "answer-invalid-value",
        "below-min-value",
        "above-max-value",
        "answer-not-in-options",
        "answer-not-in-valueset",
        "missing-linkid",
        "unknown-linkid",
    }
)


class ProblemKind(Enum):
    """What kind of problem a warning is: the CLI picks its exit code from this."""

    #: Input that could not be read: not valid JSON, or JSON that is not an object.
    UNREADABLE = "unreadable"
    #: A resource that is not a QuestionnaireResponse (skipped).
    NOT_A_RESPONSE = "not-a-response"
    #: The response's Questionnaire was not found (summarised from its own texts).
    QUESTIONNAIRE_NOT_FOUND = "questionnaire-not-found"
    #: A response that could not be summarised (e.g. not a QuestionnaireResponse inside).
    NOT_SUMMARISED = "not-summarised"
    #: A conformance finding that changes how the summary reads (:data:`READER_WARNINGS`).
    READER_WARNING = "reader-warning"
    #: A ``--questionnaire`` file that no response used.
    UNUSED_FILE = "unused-file"


@dataclass(frozen=True, slots=True)
class Problem:
    """One warning beside the summaries: its kind, and the message a person reads."""

    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class SummarizeReport:
    summarised: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: ``id()`` of every Questionnaire resource a response was summarised against.
    used: set[int] = field(default_factory=set)

    @property
    def unreadable(self) -> int:
        """How many parts of the input could not be read (the command then fails)."""
        return sum(1 for p in self.problems if p.kind is ProblemKind.UNREADABLE)


def read_responses(path: Path, problems: list[Problem]) -> Iterator[tuple[str, JsonDict]]:
    """(where, response) for every QuestionnaireResponse in the file; bad parts → problems."""
    loads = orjson.loads  # several times faster than json.loads on the summarize hot path
    name = "<stdin>" if str(path) == "-" else str(path)
    if str(path) == "-" or path.suffix in {".ndjson", ".jsonl"}:
        import sys

        stream: IO[bytes] = sys.stdin.buffer if str(path) == "-" else path.open("rb")
        first = True
        try:
            for number, raw in enumerate(stream, start=1):
                if not raw.strip():
                    continue
                try:
                    resource = loads(raw)
                except ValueError as exc:
                    if first and (stream is sys.stdin.buffer or raw.strip() in {b"{", b"["}):
                        # Not NDJSON from the first line: perhaps one pretty-printed document.
                        yield from _whole_document(raw, stream, name, exc, problems)
                        return
                    problems.append(
                        Problem(
                            ProblemKind.UNREADABLE,
                            f"{name}:{number}: not valid JSON ({str(exc).splitlines()[0][:120]}); skipped this line",
                        )
                    )
                    continue
                first = False
                yield from _unpack(resource, f"{name}:{number}", problems)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        return
    try:
        resource = loads(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{name}: cannot read the file ({exc.strerror})") from None
    except ValueError as exc:
        raise InputError(
            f"{name}: not valid JSON ({str(exc).splitlines()[0][:120]})",
            hint="for many responses, use NDJSON (one per line)",
        ) from None
    yield from _unpack(resource, name, problems)


def _whole_document(
    first: bytes, rest: IO[bytes], name: str, line_error: ValueError, problems: list[Problem]
) -> Iterator[tuple[str, JsonDict]]:
    """The first line is not a JSON value: read the input as one JSON document (a response,
    a Bundle or an array, pretty-printed), or fail once with a hint, not once per line."""
    text = first + rest.read()
    try:
        resource = orjson.loads(text)
    except ValueError as exc:
        reason = str(exc if first.strip() in {b"{", b"["} else line_error).splitlines()[0][:120]
        raise InputError(
            f"{name}: not valid JSON ({reason}); nothing was summarised",
            hint="'-' reads NDJSON (one response per line) or one JSON document; "
            "check that the input is JSON",
        ) from None
    yield from _unpack(resource, name, problems)


def _unpack(resource: Any, where: str, problems: list[Problem]) -> Iterator[tuple[str, JsonDict]]:
    if isinstance(resource, list):
        for i, item in enumerate(resource):
            yield from _unpack(item, f"{where}[{i}]", problems)
    elif not isinstance(resource, dict):
        problems.append(
            Problem(ProblemKind.UNREADABLE, f"{where}: expected a FHIR resource (a JSON object)")
        )
    elif resource.get("resourceType") == "Bundle":
        for i, entry in enumerate(resource.get("entry") or []):
            inner = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(inner, dict) and inner.get("resourceType") == "QuestionnaireResponse":
                yield f"{where} entry[{i}]", inner
    elif resource.get("resourceType") == "QuestionnaireResponse":
        yield where, resource
    elif resource.get("resourceType") != "Questionnaire":
        problems.append(
            Problem(
                ProblemKind.NOT_A_RESPONSE,
                f"{where}: a {str(resource.get('resourceType'))[:40]!r}, not a QuestionnaireResponse; skipped",
            )
        )


@dataclass
class QuestionnaireFiles:
    """What ``--questionnaire`` files hold: Questionnaires file by file (to say which file
    no response used), and every Questionnaire and ValueSet, for
    :meth:`~rejection_fhir.worksheet.catalog.Catalog.with_resources`."""

    by_file: list[tuple[Path, list[JsonDict]]] = field(default_factory=list)
    resources: list[JsonDict] = field(default_factory=list)


def read_questionnaire_files(paths: Sequence[Path]) -> QuestionnaireFiles:
    """The Questionnaires of each file (a Questionnaire or a Bundle), file by file, and
    the ValueSets beside them."""
    files = QuestionnaireFiles()
    by_file = files.by_file
    for path in paths:
        found: list[JsonDict] = []
        by_file.append((path, found))
        try:
            resource = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read a Questionnaire from it ({exc})") from None
        except RecursionError:
            raise InputError(f"{path}: nested too deeply to be a Questionnaire") from None
        if not isinstance(resource, dict):
            raise InputError(
                f"{path}: expected a Questionnaire or a Bundle (a JSON object), not a "
                f"{type(resource).__name__}"
            )
        entries = resource.get("entry")
        resources = (
            [e.get("resource") for e in entries if isinstance(e, dict)]
            if resource.get("resourceType") == "Bundle" and isinstance(entries, list)
            else [resource]
        )
        found.extend(
            r for r in resources if isinstance(r, dict) and r.get("resourceType") == "Questionnaire"
        )
        # ValueSets in the same files: Questionnaires may take option weights from them
        # by canonical (answerValueSet) rather than containing them.
        value_sets = [
            r for r in resources if isinstance(r, dict) and r.get("resourceType") == "ValueSet"
        ]
        files.resources.extend([*found, *value_sets])
        if value_sets and not found:
            by_file.pop()  # a file of ValueSets only is used for its weights, not "unused"
    return files


def unused_files(by_file: Sequence[tuple[Path, list[JsonDict]]], used: set[int]) -> list[Problem]:
    """A warning for each ``--questionnaire`` file no response was summarised against."""
    problems = []
    for path, questionnaires in by_file:
        if any(id(q) in used for q in questionnaires):
            continue
        if not questionnaires:
            problems.append(
                Problem(
                    ProblemKind.UNUSED_FILE,
                    f"{path}: holds no Questionnaire; the file was not used",
                )
            )
            continue
        names = ", ".join(_canonical(q) for q in questionnaires[:5])
        more = f" and {len(questionnaires) - 5} more" if len(questionnaires) > 5 else ""
        problems.append(
            Problem(
                ProblemKind.UNUSED_FILE,
                f"{path}: no response named its Questionnaire ({names}{more}); the file was "
                "not used (check the url and version the responses name)",
            )
        )
    return problems


def _canonical(questionnaire: JsonDict) -> str:
    url, version = questionnaire.get("url"), questionnaire.get("version")
    if not isinstance(url, str) or not url:
        identifier = questionnaire.get("id")
        return f"Questionnaire/{identifier}"[:200] if isinstance(identifier, str) else "no url"
    return (f"{url}|{version}" if isinstance(version, str) and version else url)[:200]


def summarize_files(
    paths: Sequence[Path],
    catalog: Catalog,
    write: Callable[[str], object],
    *,
    fmt: str = "text",
    fetch: Callable[[str], list[JsonDict]] | None = None,
) -> SummarizeReport:
    """Summarise every response in ``paths``, writing each rendering as it is made.

    ``catalog`` gives the Questionnaires (the built worksheets, and any ``--questionnaire``
    files: :meth:`Catalog.with_resources`), the worksheets' summarizers and the ValueSets
    weights may come from.  ``fetch(canonical)`` may return Questionnaires from a server
    for canonicals the catalog lacks; without it, such responses get a summary built from
    their own texts.
    """
    render = RENDERERS[fmt]
    index = QuestionnaireIndex(catalog.questionnaires)
    report = SummarizeReport()
    missing: set[str] = set()
    for path in paths:
        for where, response in read_responses(path, report.problems):
            compiled = index.for_response(response)
            canonical = response.get("questionnaire")
            if compiled is None and isinstance(canonical, str) and canonical not in missing:
                for q in fetch(canonical) if fetch is not None else []:
                    index.add(q)
                compiled = index.for_response(response)
                if compiled is None:
                    missing.add(canonical)
                    report.problems.append(
                        Problem(
                            ProblemKind.QUESTIONNAIRE_NOT_FOUND,
                            f"{where}: Questionnaire {canonical[:200]} not found; summarised from the response's own texts",
                        )
                    )
            fallback = None
            if compiled is None and isinstance(canonical, str) and not canonical.startswith("#"):
                # Another version of the same url lends its items to scores and safety.
                fallback = index.compiled(split_canonical(canonical)[0])
            try:
                # One analysis: the summary and the answer checks warned about beside it.
                analysis = analyse(
                    response,
                    compiled,
                    fallback=fallback,
                    summarizers=catalog.summarizers,
                    value_sets=catalog.value_sets,
                    answers_only=True,
                )
                write(render(analysis.summary))
            except InputError as exc:
                report.problems.append(
                    Problem(ProblemKind.NOT_SUMMARISED, f"{where}: {exc.message}")
                )
                continue
            report.summarised += 1
            if compiled is not None:
                report.used.add(id(compiled.source))
                # Findings quote identifiers and numbers, never the client's words.
                report.problems.extend(
                    Problem(
                        ProblemKind.READER_WARNING,
                        f"{where}: {f.path or '(response)'}: {f.message} [{f.code}]",
                    )
                    for f in analysis.findings
                    if f.code in READER_WARNINGS
                )
    return report
