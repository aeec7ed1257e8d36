"""The preview's HTTP side: routes to the pages of :mod:`.page`, loopback only.

The server binds to loopback only and answers only requests addressed to a loopback host
name: it has no authentication, and a DNS-rebinding page on the web must not be able to
reach it.  Requests are dictionary lookups, so no request path reaches the file system.
"""

from __future__ import annotations

import json
import socket
import threading
import webbrowser
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from rejection_fhir.errors import RejectionFhirError, UsageError
from rejection_fhir.fhir.urls import is_loopback
from rejection_fhir.preview.page import (
    HTML,
    LFORMS_FILES,
    PAGE_CSS,
    PREVIEW_JS,
    PreviewResponse,
    index_questionnaires,
    questionnaire_path,
    render_index_page,
    render_questionnaire_page,
    resolve_lforms_dir,
    worksheet_name,
)


def _is_loopback_host(host_header: str) -> bool:
    """The Host header names this machine (fhir.urls.is_loopback, after the port)."""
    host = host_header.strip()
    if host.startswith("["):  # [::1]:port
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.lower() == "localhost." or is_loopback(host)


def _text(status: HTTPStatus, message: str) -> PreviewResponse:
    return PreviewResponse(int(status), "text/plain; charset=utf-8", message.encode("utf-8"))


class PreviewApp(Protocol):
    """The preview's request handler: a request path and Host header in, a response out."""

    def __call__(self, raw_path: str, host: str | None = None) -> PreviewResponse: ...


def make_preview_app(questionnaires: Sequence[Mapping[str, Any]], lforms_dir: Path) -> PreviewApp:
    """Build the request handler as a plain function ``(path, host) -> PreviewResponse``.

    Pages are rendered and the whitelisted LHC-Forms files read once, here, so a request is
    a dictionary lookup: no request path ever reaches the file system, which is what rules
    out directory traversal.  ``host`` is the request's Host header (``None`` skips the
    check, for callers that are not HTTP).
    """
    lforms_dir = resolve_lforms_dir(lforms_dir)
    by_name = index_questionnaires(questionnaires)

    routes: dict[str, PreviewResponse] = {
        "/": PreviewResponse(200, HTML, render_index_page(questionnaires).encode("utf-8")),
        "/preview.js": PreviewResponse(
            200, "text/javascript; charset=utf-8", PREVIEW_JS.encode("utf-8")
        ),
        "/preview.css": PreviewResponse(200, "text/css; charset=utf-8", PAGE_CSS.encode("utf-8")),
        # Browsers ask for it unprompted; an empty answer keeps their consoles free of 404s.
        "/favicon.ico": PreviewResponse(int(HTTPStatus.NO_CONTENT), "image/x-icon", b""),
    }
    aliases: dict[str, str] = {}
    for name, questionnaire in by_name.items():
        path = questionnaire_path(name)
        routes[path] = PreviewResponse(
            200, HTML, render_questionnaire_page(questionnaire).encode("utf-8")
        )
        routes[path + ".json"] = PreviewResponse(
            200,
            "application/fhir+json; charset=utf-8",
            json.dumps(questionnaire, ensure_ascii=False, indent=2).encode("utf-8"),
        )
        # The worksheet name every other command takes (the id) leads to the same page.
        worksheet_id = questionnaire.get("id")
        if isinstance(worksheet_id, str) and worksheet_id and worksheet_id not in by_name:
            aliases[worksheet_id] = name
    for alias, name in aliases.items():
        routes[questionnaire_path(alias)] = routes[questionnaire_path(name)]
        routes[questionnaire_path(alias) + ".json"] = routes[questionnaire_path(name) + ".json"]
    for rel, media_type in LFORMS_FILES.items():
        routes["/lforms/" + rel] = PreviewResponse(200, media_type, (lforms_dir / rel).read_bytes())

    def handle(raw_path: str, host: str | None = None) -> PreviewResponse:
        if host is not None and not _is_loopback_host(host):
            return _text(HTTPStatus.MISDIRECTED_REQUEST, "The preview answers on loopback only.\n")
        # Not urlsplit: it would read "//host/x" as a network location and serve "/x".
        path = unquote(raw_path.split("#", 1)[0].split("?", 1)[0])
        found = routes.get(path)
        if found is not None:
            return found
        if path.startswith("/q/"):
            from rejection_fhir.worksheet.names import unknown_worksheet

            error = unknown_worksheet(path[3:].removesuffix(".json"), [*by_name, *aliases])
            return _text(
                HTTPStatus.NOT_FOUND,
                f"{error.message[:1].upper()}{error.message[1:]}. "
                f"Known: {', '.join(sorted(by_name)) or 'none'}\n",
            )
        return _text(HTTPStatus.NOT_FOUND, "Not found.\n")

    return handle


def folder_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when a source in ``folder`` is edited, added or removed."""
    stamp = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix in {".yaml", ".yml", ".json"}:
            try:
                info = path.stat()
            except OSError:
                continue
            stamp.append((path.name, info.st_mtime_ns, info.st_size))
    return tuple(stamp)


def make_reloading_app(
    load: Callable[[], Sequence[Mapping[str, Any]]],
    stamp: Callable[[], object],
    lforms_dir: Path,
) -> PreviewApp:
    """:func:`make_preview_app` that rebuilds when ``stamp()`` changes (an author saved a
    source), checked on each request: the next page load shows the edit.  A source that
    no longer builds is shown on every page, with its message, until it is fixed."""
    lforms_dir = resolve_lforms_dir(lforms_dir)
    lock = threading.Lock()
    state: dict[str, Any] = {"stamp": stamp(), "app": make_preview_app(load(), lforms_dir)}

    def broken(message: str) -> PreviewApp:
        def handle(raw_path: str, host: str | None = None) -> PreviewResponse:
            if host is not None and not _is_loopback_host(host):
                return _text(
                    HTTPStatus.MISDIRECTED_REQUEST, "The preview answers on loopback only.\n"
                )
            return _text(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"The worksheets do not build:\n\n{message}\n\nFix the source and reload.\n",
            )

        return handle

    def handle(raw_path: str, host: str | None = None) -> PreviewResponse:
        now = stamp()
        with lock:
            if now != state["stamp"]:
                state["stamp"] = now
                try:
                    state["app"] = make_preview_app(load(), lforms_dir)
                except RejectionFhirError as exc:
                    state["app"] = broken(str(exc))
            app: PreviewApp = state["app"]
        return app(raw_path, host)

    return handle


class PreviewServer(ThreadingHTTPServer):
    """The preview's HTTP server, serving from a daemon thread once :func:`serve` returns."""

    daemon_threads = True
    app: PreviewApp
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if isinstance(host, str) and ":" in host else str(host)
        return f"http://{shown}:{port}/"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)


class _PreviewServerV6(PreviewServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: PreviewServer
    server_version = "rejection-fhir-preview"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        response = self.server.app(self.path, self.headers.get("Host", ""))
        self.send_response(response.status)
        if response.status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        for key, value in response.headers:
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet by default: the CLI prints the URL, and request lines are noise there.
        pass


def _check_loopback(host: str) -> None:
    if not _is_loopback_host(host):
        raise UsageError(
            f"the preview binds to loopback only, not {host!r}",
            hint="use 127.0.0.1 (the default); the preview has no authentication",
        )


def serve(
    questionnaires: Sequence[Mapping[str, Any]],
    host: str = "127.0.0.1",
    port: int = 0,
    lforms_dir: Path | None = None,
    reload: tuple[Callable[[], Sequence[Mapping[str, Any]]], Callable[[], object]] | None = None,
) -> tuple[PreviewServer, str]:
    """Start serving the worksheets in a background thread; return the server and its URL.

    ``port=0`` picks a free port.  Call ``server.close()`` when done.  With ``reload``
    (``load``, ``stamp``), pages are rebuilt from ``load()`` whenever ``stamp()`` changes.
    """
    _check_loopback(host)
    if reload is not None:
        app = make_reloading_app(reload[0], reload[1], resolve_lforms_dir(lforms_dir))
    else:
        app = make_preview_app(questionnaires, resolve_lforms_dir(lforms_dir))
    server_class = _PreviewServerV6 if ":" in host else PreviewServer
    try:
        server = server_class((host, port), _Handler)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="pick another --port, or 0 for any free one",
        ) from exc
    server.app = app
    server.thread = threading.Thread(
        target=server.serve_forever, name="rejection-fhir-preview", daemon=True
    )
    server.thread.start()
    return server, server.url


def run_preview(
    questionnaires: Sequence[Mapping[str, Any]],
    name: str | None,
    port: int,
    open_browser: bool = False,
    reload: tuple[Callable[[], Sequence[Mapping[str, Any]]], Callable[[], object]] | None = None,
) -> None:
    """Serve until Ctrl-C, printing the URL (of worksheet ``name`` when given).

    ``name`` is the worksheet name (``rejection-log``) or the FHIR name (``RejectionLog``).
    """
    if name is not None:
        from rejection_fhir.worksheet.names import find_worksheet

        name = worksheet_name(find_worksheet(questionnaires, name))
    server, url = serve(questionnaires, port=port, reload=reload)
    if name is not None:
        url = url.rstrip("/") + questionnaire_path(name)
    try:
        print(f"Previewing {len(questionnaires)} worksheet(s) at {url}", flush=True)
        if reload is not None:
            print("Pages are rebuilt when a source changes: save and reload.", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        if open_browser:
            webbrowser.open(url)
        while server.thread.is_alive():
            server.thread.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
