"""The fuzz suite's seed, case counter and CLI runner.

Seed: ``RFHIR_FUZZ_SEED`` (default below; CI may set another).  Every case draws from
``random.Random(f"{seed}:{name}:{case}")`` and hypothesis runs under ``@seed(SEED)``, so a
failure reproduces from the seed and case printed in its assertion message.

Cases are counted per test and in total; the terminal summary prints them, and when the
whole fuzz folder ran the total must reach :data:`MIN_CASES`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir.errors import ExitCode

SEED = int(os.environ.get("RFHIR_FUZZ_SEED", "").strip() or "20261126")
MIN_CASES = 10_000
FUZZ_DIR = Path(__file__).resolve().parent
CASES: Counter[str] = Counter()
_STATE: dict[str, Any] = {"items": set(), "deselected": False, "failed": False}


def count(name: str, n: int = 1) -> None:
    CASES[name] += n


def rng_for(name: str, case: int) -> random.Random:
    return random.Random(f"{SEED}:{name}:{case}")


def tag(name: str, case: int | str = "-") -> str:
    """Put this in every assertion message: how to reproduce the case."""
    return f"[RFHIR_FUZZ_SEED={SEED} test={name} case={case}]"


@dataclass
class CliResult:
    code: int
    out: str
    err: str
    log: str


def run_cli(args: list[str]) -> CliResult:
    """``rejection_fhir.cli.main(args)`` in-process, with stdout, stderr and logging captured."""
    from rejection_fhir.cli import main

    out, err, log = io.StringIO(), io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(log)
    root = logging.getLogger()
    root.addHandler(handler)
    code: Any = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as exc:
                code = exc.code
    finally:
        root.removeHandler(handler)
    return CliResult(int(code or 0), out.getvalue(), err.getvalue(), log.getvalue())


KNOWN_CODES = {int(c) for c in ExitCode}


def assert_clean_exit(result: CliResult, where: str, *, allowed: set[int] | None = None) -> None:
    """A documented exit code, never the internal-error one; a failure says one clear
    ``error:`` line; no traceback anywhere."""
    text = result.out + result.err + result.log
    assert "Traceback" not in text, f"{where} traceback:\n{text[-3000:]}"
    assert result.code in KNOWN_CODES, (
        f"{where} undocumented exit {result.code}: {result.err[-2000:]}"
    )
    assert result.code != ExitCode.INTERNAL, f"{where} internal error: {result.err[-2000:]}"
    if allowed is not None:
        assert result.code in allowed, (
            f"{where} exit {result.code} not in {allowed}: {result.err[-2000:]}"
        )
    if result.code not in (ExitCode.OK, ExitCode.FINDINGS):
        errors = [line for line in result.err.splitlines() if line.lower().startswith("error:")]
        assert len(errors) == 1, f"{where} wants one 'error:' line, got:\n{result.err[-2000:]}"
        assert len(errors[0]) < 2000, f"{where} error line is {len(errors[0])} chars long"


# --------------------------------------------------------------------------- hooks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _STATE["items"] = {item.nodeid for item in items if Path(str(item.path)).parent == FUZZ_DIR}


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(Path(str(item.path)).parent == FUZZ_DIR for item in items):
        _STATE["deselected"] = True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid in _STATE["items"] and report.failed:
        _STATE["failed"] = True


def _whole_folder_ran(session: pytest.Session) -> bool:
    files = {p.name for p in FUZZ_DIR.glob("test_*.py")}
    ran = {nodeid.split("::")[0].rsplit("/", 1)[-1] for nodeid in _STATE["items"]}
    return bool(files) and files <= ran and not _STATE["deselected"] and not session.shouldstop


def pytest_report_header(config: pytest.Config) -> str:
    return f"fuzz: RFHIR_FUZZ_SEED={SEED}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not CASES:
        return
    total = sum(CASES.values())
    terminalreporter.section("fuzz cases")
    for name, n in sorted(CASES.items()):
        terminalreporter.write_line(f"{n:>7}  {name}")
    terminalreporter.write_line(f"{total:>7}  total (RFHIR_FUZZ_SEED={SEED})")
    if _STATE.get("short"):
        terminalreporter.write_line(
            f"FAILED: the whole fuzz folder ran only {total} cases; at least {MIN_CASES} are required",
            red=True,
        )
    if _STATE["failed"]:
        terminalreporter.write_line(
            f"to reproduce: RFHIR_FUZZ_SEED={SEED} pytest tests/fuzz", red=True
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    total = sum(CASES.values())
    if (
        _STATE["items"]
        and _whole_folder_ran(session)
        and not _STATE["failed"]
        and total < MIN_CASES
    ):
        _STATE["short"] = True
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def seeded() -> Iterator[int]:
    yield SEED
