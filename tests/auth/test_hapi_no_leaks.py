"""The leak scan against the real HAPI server: publish and sync with -vv, a bearer token in
the environment and responses carrying distinctive answers (one of them invalid, so it is
rejected with findings).  Nothing printed or logged holds the token or an answer."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rejection_fhir.cli import main
from rejection_fhir.commands.build import build_all
from rejection_fhir.errors import ExitCode
from rejection_fhir.settings import load_settings, make_client
from rejection_fhir.worksheet.synthetic import ResponseFactory, patient
from tests.conftest import QUESTIONNAIRES, unavailable

pytestmark = pytest.mark.integration

TOKEN = "tok-HAPI-LEAKCHECK-61f0"
ANSWER = "ANSWER-HAPI-LEAKCHECK-2b7"


@pytest.fixture(scope="module")
def hapi() -> str:
    from tests.hapi_server import ensure_server

    try:
        return ensure_server()
    except RuntimeError as exc:
        unavailable(f"HAPI FHIR server unavailable: {exc}")
        raise


def _run(capsys: Any, caplog: Any, *args: str) -> tuple[int, str]:
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    code: Any = 0
    try:
        main(["-vv", *args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out + err + caplog.text


def test_publish_and_sync_on_hapi_leak_nothing(
    hapi: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RFHIR_TOKEN", TOKEN)  # HAPI ignores it; we must not show it anyway
    base = f"https://leak.rejection-fhir.org/{uuid.uuid4().hex[:10]}/fhir"
    code, seen = _run(capsys, caplog, "publish", "--server", hapi, "--base-url", base)
    assert code == ExitCode.OK, seen[-2000:]
    assert TOKEN not in seen

    built, _ = build_all(QUESTIONNAIRES, base_url=base)
    log_form = next(q for q in built.questionnaires if q["url"].endswith("/rejection-log"))
    settings = load_settings({"server": hapi}, env={"RFHIR_TOKEN": TOKEN})
    since = (datetime.now(UTC) - timedelta(seconds=2)).isoformat(timespec="seconds")
    with make_client(settings) as client:
        subject = f"Patient/{client.create(patient(base)).id}"
        good = ResponseFactory(seed=5).response(log_form, subject=subject)
        good["item"][0]["answer"] = [{"valueString": ANSWER}]
        bad = ResponseFactory(seed=6).response(log_form, subject=subject)
        bad["item"] = [{"linkId": "what-happened", "answer": [{"valueString": ANSWER}]}]
        for qr in (good, bad):
            client.create(qr, sensitive=True)
    code, seen = _run(
        capsys,
        caplog,
        "sync",
        "--source-server",
        hapi,
        "--since",
        since.replace("+00:00", "Z"),
        "--state",
        str(tmp_path / "state.sqlite3"),
        "--base-url",
        base,
    )
    assert code == ExitCode.FINDINGS, seen[-3000:]  # the invalid one was rejected
    assert "rejected" in seen
    assert TOKEN not in seen
    assert ANSWER not in seen
