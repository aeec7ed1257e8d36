"""The last line of defence in ``cli.main``: whatever escapes a command becomes one clear
message and a documented exit code; an internal error never repeats the exception's text
(it may quote a client's answers)."""

from __future__ import annotations

import pytest

from rejection_fhir.errors import ExitCode
from tests.fuzz.conftest import assert_clean_exit, count, run_cli

CLIENT_TEXT = "I feel worthless since Tom left 4f1c"


@pytest.mark.parametrize(
    ("raised", "code", "says"),
    [
        (ValueError(CLIENT_TEXT), ExitCode.INTERNAL, "internal error (please report): ValueError"),
        (KeyError(CLIENT_TEXT), ExitCode.INTERNAL, "internal error (please report): KeyError"),
        (RecursionError(CLIENT_TEXT), ExitCode.INPUT, "nested too deeply"),
        (MemoryError(CLIENT_TEXT), ExitCode.INPUT, "ran out of memory"),
    ],
)
def test_unexpected_exceptions_become_one_message(
    monkeypatch: pytest.MonkeyPatch, raised: BaseException, code: int, says: str
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr("rejection_fhir.commands.validate.validate", explode)
    result = run_cli(["validate", "questionnaires"])
    assert result.code == code, result.err
    assert says in result.err
    assert CLIENT_TEXT not in result.out + result.err + result.log
    if code == ExitCode.INTERNAL:
        assert "in validate_cmd" in result.err  # where it broke in our code, for the report
        assert result.err.count("error:") == 1 and "Traceback" not in result.err
    else:
        assert_clean_exit(result, "handler", allowed={int(code)})
    count("cli/crash-handler")
