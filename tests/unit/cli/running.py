"""Running the CLI in-process for tests, as a shell would see it."""

from __future__ import annotations

import pytest

from rejection_fhir.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``rejection-fhir ARGS``: its exit code (0 when it returns), stdout and stderr."""
    with pytest.raises(SystemExit) as caught:
        main(list(args))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(caught.value.code or 0), out, err
