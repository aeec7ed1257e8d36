"""The preview's pages: what is served for each worksheet, rendered by LHC-Forms.

Pages, the script that shows the QuestionnaireResponse LHC-Forms makes, the Content
Security Policy that keeps everything on this machine, and where the LHC-Forms build is
found.  :mod:`.server` routes requests to them.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rejection_fhir.errors import ConfigError, InputError

#: The LHC-Forms version pinned in ``web/package.json``; pages show it for bug reports.
from rejection_fhir.preview.lforms_install import LFORMS_VERSION

#: Environment variable naming the folder that holds the unpacked ``dist/lforms`` build.
LFORMS_DIR_ENV = "RFHIR_LFORMS_DIR"


#: The only LHC-Forms files the preview serves (path under the lforms folder -> media type).
#: Keep in step with REQUIRED in ``scripts/install-lforms``.
LFORMS_FILES: Mapping[str, str] = {
    "webcomponent/assets/lib/zone.min.js": "text/javascript; charset=utf-8",
    "webcomponent/lhc-forms.js": "text/javascript; charset=utf-8",
    "fhir/R4/lformsFHIR.min.js": "text/javascript; charset=utf-8",
    "webcomponent/styles.css": "text/css; charset=utf-8",
    # styles.css refers to these two icons by relative URL.
    "webcomponent/down_arrow_gray_10_10.png": "image/png",
    "webcomponent/magnifying_glass.png": "image/png",
}

#: Load order matters: zone.js patches the browser before the Angular-based web component
#: starts, and the FHIR support library registers itself on the ``LForms`` global that the
#: web component creates.
LFORMS_SCRIPTS: tuple[str, ...] = (
    "webcomponent/assets/lib/zone.min.js",
    "webcomponent/lhc-forms.js",
    "fhir/R4/lformsFHIR.min.js",
)

#: Id of the element LHC-Forms renders the form into; tests look it up too.
FORM_CONTAINER_ID = "lforms-form"

_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # The web component (Angular + ng-zorro) sets inline styles on its elements.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        # The type-ahead list plays a short data: sound for screen-reader users.
        "media-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_COMMON_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", _CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    # Rebuilt Questionnaires must show on reload; everything is local, so caching buys little.
    ("Cache-Control", "no-cache"),
)

HTML = "text/html; charset=utf-8"

# Runs in the browser.  Served as a file (not inline) so the CSP can forbid inline scripts.
PREVIEW_JS = """\
"use strict";
(function () {
  var container = document.getElementById("__CONTAINER_ID__");
  var button = document.getElementById("show-qr");
  var output = document.getElementById("qr-output");
  var validity = document.getElementById("qr-validity");
  var problem = document.getElementById("load-problem");

  function fail(message) {
    problem.textContent = message;
    problem.hidden = false;
    document.body.dataset.formState = "error";
  }

  if (!window.LForms || !window.LForms.Util) {
    fail("LHC-Forms did not load. Run rejection-fhir preview --install-lforms and restart the preview.");
    return;
  }
  var questionnaire = JSON.parse(document.getElementById("questionnaire-json").textContent);
  window.LForms.Util.addFormToPage(questionnaire, container, {fhirVersion: "R4"}).then(
    function () {
      addSliders(questionnaire);
      button.disabled = false;
      document.body.dataset.formState = "ready";
    },
    function (err) {
      var detail = err && err.message ? err.message : String(err);
      fail("LHC-Forms could not render this Questionnaire: " + detail);
    }
  );

  // LHC-Forms 40 renders itemControl "slider" as a plain number box.  Put a range input
  // beside each such box (min/maxValue, sliderStepValue) and keep the two in step: the box
  // stays the answer LHC-Forms records, the slider only types into it.
  function sliderSpecs(items, specs) {
    (items || []).forEach(function (item) {
      var ext = {};
      (item.extension || []).forEach(function (e) { ext[e.url] = e; });
      var control = ext["http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"];
      var code = control && control.valueCodeableConcept && control.valueCodeableConcept.coding &&
        control.valueCodeableConcept.coding[0] && control.valueCodeableConcept.coding[0].code;
      function num(url) {
        var e = ext[url];
        return e ? (e.valueInteger !== undefined ? e.valueInteger : e.valueDecimal) : undefined;
      }
      if (code === "slider") {
        specs[item.linkId] = {
          min: num("http://hl7.org/fhir/StructureDefinition/minValue"),
          max: num("http://hl7.org/fhir/StructureDefinition/maxValue"),
          step: num("http://hl7.org/fhir/StructureDefinition/questionnaire-sliderStepValue")
        };
      }
      sliderSpecs(item.item, specs);
    });
    return specs;
  }

  function attachSlider(box, linkId, spec) {
    if (box.dataset.rfhirSlider) { return; }
    box.dataset.rfhirSlider = "1";
    var range = document.createElement("input");
    range.type = "range";
    range.className = "rfhir-slider";
    range.dataset.linkId = linkId;
    range.setAttribute("aria-label", "Slider for " + linkId);
    range.min = spec.min !== undefined ? spec.min : 0;
    range.max = spec.max !== undefined ? spec.max : 10;
    range.step = spec.step !== undefined ? spec.step : (box.value.indexOf(".") >= 0 ? "any" : 1);
    if (box.value !== "") { range.value = box.value; }
    range.addEventListener("input", function () {
      box.value = range.value;
      box.dispatchEvent(new Event("input", {bubbles: true}));
      box.dispatchEvent(new Event("change", {bubbles: true}));
    });
    box.addEventListener("input", function () {
      if (box.value !== "") { range.value = box.value; }
    });
    box.parentNode.insertBefore(range, box);
  }

  function addSliders(q) {
    var specs = sliderSpecs(q.item, {});
    var linkIds = Object.keys(specs);
    if (!linkIds.length) { return; }
    function scan() {
      linkIds.forEach(function (linkId) {
        // Ids are "<linkId>/<repeat>/…"; a linkId may hold dots, so match the id's start.
        container.querySelectorAll("input").forEach(function (box) {
          if (box.id.indexOf(linkId + "/") === 0 && box.type !== "range") {
            attachSlider(box, linkId, specs[linkId]);
          }
        });
      });
    }
    scan();
    // Repeats added later and items shown by enableWhen get their slider too.
    new MutationObserver(scan).observe(container, {childList: true, subtree: true});
  }

  button.addEventListener("click", function () {
    var response = window.LForms.Util.getFormFHIRData("QuestionnaireResponse", "R4", container);
    // LHC-Forms marks a response "completed" even when required answers are missing or
    // invalid, so say plainly whether the form's own checks pass.
    var errors = window.LForms.Util.checkValidity(container);
    validity.textContent = errors
      ? "The form's checks fail: " + errors.join("; ")
      : "All answers pass the form's checks.";
    validity.dataset.valid = errors ? "false" : "true";
    output.textContent = JSON.stringify(response, null, 2);
    output.hidden = false;
  });
})();
""".replace("__CONTAINER_ID__", FORM_CONTAINER_ID)

PAGE_CSS = """\
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem; }
header p { color: #555; margin-top: 0; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.8rem; text-align: left; }
#show-qr { margin: 1rem 0; font-size: 1rem; padding: 0.4rem 1rem; }
#qr-output { background: #f6f6f6; border: 1px solid #ddd; padding: 0.8rem; overflow: auto; }
#load-problem { color: #a00; font-weight: bold; }
.rfhir-slider { width: 16rem; margin-right: 0.8rem; vertical-align: middle; }
"""


@dataclass(frozen=True)
class PreviewResponse:
    """What the preview answers to one request; the HTTP handler only copies it out."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = field(default=_COMMON_HEADERS)


def default_lforms_dir() -> Path:
    """Where LHC-Forms is looked for when ``$RFHIR_LFORMS_DIR`` is unset.

    The working directory's ``.web/lforms`` wins, so the CLI run from a checkout finds it;
    then the checkout this module was installed from (editable install); then the user's
    cache folder, where ``rejection-fhir preview --install-lforms`` puts it.
    """
    from rejection_fhir.preview.lforms_install import cache_dir

    here = Path.cwd() / ".web" / "lforms"
    checkout = Path(__file__).resolve().parents[3] / ".web" / "lforms"
    for candidate in (here, checkout, cache_dir()):
        if candidate.is_dir():
            return candidate
    return cache_dir()


def resolve_lforms_dir(
    lforms_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """Pick the LHC-Forms folder (argument, then ``$RFHIR_LFORMS_DIR``, then the default)
    and check that every file the preview serves is in it."""
    env = os.environ if environ is None else environ
    if lforms_dir is None:
        configured = env.get(LFORMS_DIR_ENV, "").strip()
        lforms_dir = Path(configured) if configured else default_lforms_dir()
    missing = [rel for rel in LFORMS_FILES if not (lforms_dir / rel).is_file()]
    if missing:
        raise ConfigError(
            f"LHC-Forms is not installed in {lforms_dir}: missing {', '.join(missing)}",
            hint="run rejection-fhir preview --install-lforms (it fetches LHC-Forms "
            f"{LFORMS_VERSION} from npm once), or point {LFORMS_DIR_ENV} at an unpacked "
            "dist/lforms folder",
        )
    return lforms_dir


def worksheet_name(questionnaire: Mapping[str, Any]) -> str:
    """The name a worksheet is served under: ``Questionnaire.name``, else its ``id``."""
    for key in ("name", "id"):
        value = questionnaire.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise InputError(
        f"Questionnaire {questionnaire.get('url', '(no url)')!s} has neither name nor id, "
        "so the preview cannot give it a page",
        hint="give the worksheet a name in its YAML source and rebuild",
    )


def index_questionnaires(
    questionnaires: Sequence[Mapping[str, Any]],
) -> dict[str, Mapping[str, Any]]:
    """Questionnaires by :func:`worksheet_name`, refusing non-Questionnaires and clashes."""
    by_name: dict[str, Mapping[str, Any]] = {}
    for questionnaire in questionnaires:
        kind = questionnaire.get("resourceType")
        if kind != "Questionnaire":
            raise InputError(
                f"preview got a {kind or 'resource without resourceType'} "
                f"({questionnaire.get('id', 'no id')}) where a Questionnaire was expected",
                hint="pass the output of `rejection-fhir build`",
            )
        name = worksheet_name(questionnaire)
        if name in by_name:
            raise InputError(
                f"two Questionnaires are both named {name!r} "
                f"(versions {by_name[name].get('version')} and {questionnaire.get('version')})",
                hint="preview one version at a time",
            )
        by_name[name] = questionnaire
    return by_name


def questionnaire_path(name: str) -> str:
    """URL path of a worksheet's page."""
    return "/q/" + quote(name, safe="")


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def script_json(document: Mapping[str, Any]) -> str:
    """JSON that is safe inside a ``<script type="application/json">`` element.

    Escaping ``<``, ``>`` and ``&`` keeps worksheet text such as ``</script>`` from ending
    the element early; the line separators would break older JSON-in-script parsers.
    """
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _page(title: str, body: str, scripts: Sequence[str] = ()) -> str:
    tags = "".join(f'<script src="{_esc(src)}"></script>\n' for src in scripts)
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n"
        '<link rel="stylesheet" href="/lforms/webcomponent/styles.css">\n'
        '<link rel="stylesheet" href="/preview.css">\n'
        "</head>\n<body>\n"
        f"{body}"
        # LHC-Forms wants its scripts in <body>, after the container exists.
        f"{tags}"
        "</body>\n</html>\n"
    )


def render_index_page(questionnaires: Sequence[Mapping[str, Any]]) -> str:
    """The list of worksheets, each linking to its form and its Questionnaire JSON."""
    by_name = index_questionnaires(questionnaires)
    rows = []
    for name, questionnaire in by_name.items():
        path = questionnaire_path(name)
        rows.append(
            "<tr>"
            f'<td><a href="{_esc(path)}">{_esc(questionnaire.get("title") or name)}</a></td>'
            f"<td><code>{_esc(name)}</code></td>"
            f"<td>{_esc(questionnaire.get('version', ''))}</td>"
            f"<td>{_esc(questionnaire.get('status', ''))}</td>"
            f'<td><a href="{_esc(path)}.json">JSON</a></td>'
            "</tr>\n"
        )
    table = (
        "<table>\n<thead><tr><th>Worksheet</th><th>Name</th><th>Version</th><th>Status</th>"
        "<th>Questionnaire</th></tr></thead>\n<tbody>\n" + "".join(rows) + "</tbody>\n</table>\n"
        if rows
        else "<p>No worksheets to show. Build them first: <code>rejection-fhir build</code>.</p>\n"
    )
    body = (
        "<header><h1>Worksheets</h1>"
        f"<p>Rendered with LHC-Forms {_esc(LFORMS_VERSION)} (FHIR R4). "
        "Answers you type stay in this browser.</p></header>\n"
        f"<main>\n{table}</main>\n"
    )
    return _page("Worksheets — rejection-fhir preview", body)


def render_questionnaire_page(questionnaire: Mapping[str, Any]) -> str:
    """A page that renders one Questionnaire with LHC-Forms and can show its response."""
    name = worksheet_name(questionnaire)
    title = questionnaire.get("title") or name
    facts = " · ".join(
        _esc(part)
        for part in (
            name,
            f"version {questionnaire['version']}" if questionnaire.get("version") else None,
            questionnaire.get("url"),
        )
        if part
    )
    body = (
        '<header><p><a href="/">All worksheets</a></p>'
        f"<h1>{_esc(title)}</h1><p>{facts}</p></header>\n"
        "<main>\n"
        '<p id="load-problem" role="alert" hidden></p>\n'
        f'<div id="{FORM_CONTAINER_ID}"></div>\n'
        '<button id="show-qr" type="button" disabled>Show QuestionnaireResponse</button>\n'
        '<p id="qr-validity" aria-live="polite"></p>\n'
        '<pre id="qr-output" hidden></pre>\n'
        "</main>\n"
        '<script type="application/json" id="questionnaire-json">'
        f"{script_json(questionnaire)}</script>\n"
    )
    scripts = [f"/lforms/{rel}" for rel in LFORMS_SCRIPTS] + ["/preview.js"]
    return _page(f"{title} — rejection-fhir preview", body, scripts)
