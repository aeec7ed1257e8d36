"""The preview's pages and routing, without a socket or a browser.

The LHC-Forms folder is faked in tmp_path: these tests check which files are served and
how pages are put together, not LHC-Forms itself (tests/browser does that).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rejection_fhir.errors import ConfigError, ExitCode, InputError, UsageError
from rejection_fhir.preview.page import (
    LFORMS_DIR_ENV,
    LFORMS_FILES,
    LFORMS_SCRIPTS,
    render_index_page,
    render_questionnaire_page,
    resolve_lforms_dir,
    script_json,
    worksheet_name,
)
from rejection_fhir.preview.server import make_preview_app, run_preview, serve

HOSTILE_TITLE = '</script><script>alert("x")</script> & <b>bold</b>'


def questionnaire(name: str = "RejectionLog", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Questionnaire",
        "id": name.lower(),
        "url": f"http://example.org/fhir/Questionnaire/{name.lower()}",
        "version": "1.2.0",
        "name": name,
        "title": "Rejection log",
        "status": "active",
        "item": [{"linkId": "what", "text": "What happened?", "type": "text"}],
        **extra,
    }


@pytest.fixture
def lforms_dir(tmp_path: Path) -> Path:
    """A fake unpacked lforms build, plus files that must never be served."""
    root = tmp_path / "lforms"
    for rel in LFORMS_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(f"/* {rel} */".encode())
    (root / "webcomponent" / "index.html").write_text("not whitelisted")
    (root / "webcomponent" / "lhc-forms.js.map").write_text("not whitelisted")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    return root


def script_block(page: str) -> Any:
    match = re.search(
        r'<script type="application/json" id="questionnaire-json">(.*?)</script>', page, re.S
    )
    assert match, "page has no questionnaire-json block"
    return json.loads(match.group(1))


# --- where LHC-Forms is --------------------------------------------------------------------


def test_missing_lforms_is_a_config_error_that_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_lforms_dir(tmp_path / "nowhere")
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "webcomponent/lhc-forms.js" in str(caught.value)
    assert "rejection-fhir preview --install-lforms" in str(caught.value)


def test_partly_installed_lforms_names_the_missing_file(lforms_dir: Path) -> None:
    (lforms_dir / "fhir/R4/lformsFHIR.min.js").unlink()
    with pytest.raises(ConfigError, match=r"missing fhir/R4/lformsFHIR\.min\.js\n"):
        resolve_lforms_dir(lforms_dir)


def test_lforms_dir_comes_from_the_environment(lforms_dir: Path, tmp_path: Path) -> None:
    assert resolve_lforms_dir(environ={LFORMS_DIR_ENV: str(lforms_dir)}) == lforms_dir
    with pytest.raises(ConfigError, match="elsewhere"):
        resolve_lforms_dir(environ={LFORMS_DIR_ENV: str(tmp_path / "elsewhere")})


# --- pages -------------------------------------------------------------------------------------


def test_index_lists_title_name_version_and_escapes_the_title() -> None:
    page = render_index_page(
        [questionnaire(title=HOSTILE_TITLE), questionnaire("FutureFocus", version="0.3.0")]
    )
    assert "<script>alert" not in page
    assert html.escape(HOSTILE_TITLE) in page
    assert '<a href="/q/RejectionLog">' in page
    assert '<a href="/q/FutureFocus.json">JSON</a>' in page
    assert "<td>1.2.0</td>" in page and "<td>0.3.0</td>" in page


def test_index_without_worksheets_says_how_to_build_them() -> None:
    assert "rejection-fhir build" in render_index_page([])


def test_form_page_carries_the_questionnaire_unchanged_and_inert() -> None:
    q = questionnaire(title=HOSTILE_TITLE)
    q["item"][0]["text"] = "Ends </script> early? <!-- no & no"
    page = render_questionnaire_page(q)
    assert script_block(page) == q
    # The only </script> sequences are the page's own closing tags.
    assert page.count("</script>") == page.count("<script")
    assert f"<h1>{html.escape(HOSTILE_TITLE)}</h1>" in page
    assert f"<title>{html.escape(HOSTILE_TITLE)} — rejection-fhir preview</title>" in page


def test_form_page_loads_lforms_in_body_in_order_from_this_server_only() -> None:
    page = render_questionnaire_page(questionnaire())
    sources = re.findall(r'<script src="([^"]+)"', page)
    assert sources == [f"/lforms/{rel}" for rel in LFORMS_SCRIPTS] + ["/preview.js"]
    assert LFORMS_SCRIPTS == (
        "webcomponent/assets/lib/zone.min.js",
        "webcomponent/lhc-forms.js",
        "fhir/R4/lformsFHIR.min.js",
    )
    body = page.split("<body>", 1)[1]
    assert all(f'src="{src}"' in body for src in sources)
    # No CDN: every src/href is a path on the preview server itself.
    assert all(ref.startswith("/") for ref in re.findall(r'(?:src|href)="([^"]*)"', page))
    assert '<button id="show-qr" type="button" disabled>Show QuestionnaireResponse</button>' in page


@given(st.text())
def test_script_json_round_trips_any_text_and_never_closes_the_element(text: str) -> None:
    encoded = script_json({"text": text})
    assert json.loads(encoded) == {"text": text}
    assert not set(encoded) & {"<", ">", "&", "\u2028", "\u2029"}


def test_worksheet_name_falls_back_to_id_and_refuses_neither() -> None:
    assert worksheet_name({"id": "only-id"}) == "only-id"
    with pytest.raises(InputError, match="neither name nor id"):
        worksheet_name({"url": "http://example.org/Q/x"})


def test_two_versions_of_one_worksheet_are_refused(lforms_dir: Path) -> None:
    with pytest.raises(InputError, match=r"'RejectionLog'.*1\.2\.0 and 2\.0\.0"):
        make_preview_app([questionnaire(), questionnaire(version="2.0.0")], lforms_dir)


def test_a_non_questionnaire_is_refused(lforms_dir: Path) -> None:
    with pytest.raises(InputError, match="QuestionnaireResponse"):
        make_preview_app([{"resourceType": "QuestionnaireResponse", "id": "r1"}], lforms_dir)


# --- routing -----------------------------------------------------------------------------------


def test_routes_serve_pages_json_and_whitelisted_lforms_files(lforms_dir: Path) -> None:
    q = questionnaire()
    app = make_preview_app([q], lforms_dir)

    index = app("/?refresh=1")
    assert index.status == 200 and index.content_type.startswith("text/html")
    form = app("/q/RejectionLog")
    assert form.status == 200 and script_block(form.body.decode()) == q
    as_json = app("/q/RejectionLog.json")
    assert as_json.content_type.startswith("application/fhir+json")
    assert json.loads(as_json.body) == q
    for rel, media_type in LFORMS_FILES.items():
        served = app(f"/lforms/{rel}")
        assert (served.status, served.content_type) == (200, media_type)
        assert served.body == (lforms_dir / rel).read_bytes()
    assert b"addFormToPage" in app("/preview.js").body


@pytest.mark.parametrize(
    "path",
    [
        "/lforms/../secret.txt",
        "/lforms/%2e%2e/secret.txt",
        "/lforms/webcomponent/../../secret.txt",
        "/lforms/webcomponent/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/lforms//webcomponent/lhc-forms.js",
        "/lforms/webcomponent/index.html",
        "/lforms/webcomponent/lhc-forms.js.map",
        "/lforms/",
        "/q/../secret.txt",
        "/q/..%2f..%2fsecret.txt",
        "/../secret.txt",
        "/secret.txt",
    ],
)
def test_nothing_outside_the_whitelist_is_served(lforms_dir: Path, path: str) -> None:
    response = make_preview_app([questionnaire()], lforms_dir)(path)
    assert response.status == 404
    assert b"SECRET" not in response.body and b"not whitelisted" not in response.body


def test_unknown_worksheet_names_the_known_ones(lforms_dir: Path) -> None:
    app = make_preview_app([questionnaire(), questionnaire("FutureFocus")], lforms_dir)
    response = app("/q/CoreBeliefs")
    assert response.status == 404
    assert b"'CoreBeliefs'" in response.body and b"FutureFocus, RejectionLog" in response.body


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.1"])
def test_loopback_host_headers_are_answered(lforms_dir: Path, host: str) -> None:
    assert make_preview_app([questionnaire()], lforms_dir)("/", host).status == 200


@pytest.mark.parametrize("host", ["evil.example:8765", "192.168.1.5:8765", "", "[2001:db8::1]:80"])
def test_other_host_headers_are_refused(lforms_dir: Path, host: str) -> None:
    # A page elsewhere that rebinds its DNS name to 127.0.0.1 still sends its own Host.
    assert make_preview_app([questionnaire()], lforms_dir)("/", host).status == 421


def test_every_response_forbids_scripts_from_elsewhere(lforms_dir: Path) -> None:
    app = make_preview_app([questionnaire()], lforms_dir)
    for path in ("/", "/q/RejectionLog", "/lforms/webcomponent/lhc-forms.js", "/nope"):
        headers = dict(app(path).headers)
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self';" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"


# --- serving (refusals happen before any socket is opened) ---------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org"])
def test_serve_refuses_to_listen_beyond_loopback(lforms_dir: Path, host: str) -> None:
    with pytest.raises(UsageError, match="loopback only") as caught:
        serve([questionnaire()], host=host, lforms_dir=lforms_dir)
    assert caught.value.exit_code == ExitCode.USAGE


def test_run_preview_refuses_an_unknown_name_before_serving(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(UsageError) as caught:
        run_preview([questionnaire()], "Nope", port=0)
    assert "'Nope'" in str(caught.value) and "RejectionLog" in str(caught.value)
    assert capsys.readouterr().out == ""


# --- names a person types, and reloading after an edit (issue 18) --------------------------


def test_a_worksheet_is_served_under_its_worksheet_name_too(lforms_dir: Path) -> None:
    q = questionnaire(id="rejection-log")
    app = make_preview_app([q], lforms_dir)
    assert app("/q/rejection-log").status == 200
    assert app("/q/RejectionLog").body == app("/q/rejection-log").body
    assert json.loads(app("/q/rejection-log.json").body)["name"] == "RejectionLog"


def test_an_unknown_page_suggests_the_closest_name(lforms_dir: Path) -> None:
    app = make_preview_app([questionnaire(id="rejection-log")], lforms_dir)
    response = app("/q/rejection-lgo")
    assert response.status == 404 and b"did you mean 'rejection-log'" in response.body


def test_run_preview_takes_the_worksheet_name_and_suggests_for_a_typo() -> None:
    with pytest.raises(UsageError) as caught:
        run_preview([questionnaire(id="rejection-log")], "rejection-lgo", port=0)
    assert "did you mean 'rejection-log'" in str(caught.value)


def test_pages_are_rebuilt_when_the_sources_change(lforms_dir: Path) -> None:
    from rejection_fhir.preview.server import make_reloading_app

    current = {"title": "First title", "stamp": 1, "loads": 0}

    def load() -> list[dict[str, Any]]:
        current["loads"] += 1
        return [questionnaire(title=current["title"])]

    app = make_reloading_app(load, lambda: current["stamp"], lforms_dir)
    assert b"First title" in app("/q/RejectionLog").body
    current["title"] = "Second title"
    assert b"First title" in app("/q/RejectionLog").body  # unchanged stamp: not rebuilt
    current["stamp"] = 2
    assert b"Second title" in app("/q/RejectionLog").body
    assert current["loads"] == 2


def test_a_source_that_no_longer_builds_is_shown_not_fatal(lforms_dir: Path) -> None:
    from rejection_fhir.errors import SourceError
    from rejection_fhir.preview.server import make_reloading_app

    state = {"broken": False, "stamp": 1}

    def load() -> list[dict[str, Any]]:
        if state["broken"]:
            raise SourceError("rejection-log.yaml:3:1: YAML syntax error")
        return [questionnaire()]

    app = make_reloading_app(load, lambda: state["stamp"], lforms_dir)
    state.update(broken=True, stamp=2)
    response = app("/q/RejectionLog")
    assert response.status == 500 and b"rejection-log.yaml:3:1" in response.body
    state.update(broken=False, stamp=3)
    assert app("/q/RejectionLog").status == 200


def test_the_folder_stamp_changes_when_a_yaml_file_is_edited(tmp_path: Path) -> None:
    import os

    from rejection_fhir.preview.server import folder_stamp

    source = tmp_path / "rejection-log.yaml"
    source.write_text("a: 1\n")
    before = folder_stamp(tmp_path)
    source.write_text("a: 22\n")
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10_000_000))
    assert folder_stamp(tmp_path) != before
