"""Build hook: compile the summary's hot path to C with mypyc, when it can.

Everything else about the package is declared in pyproject.toml.  The modules in
``COMPILED`` are ordinary, strictly typed Python; mypyc (part of mypy, which the project
already type-checks with) turns them into C extensions that summarise responses about
twice as fast (``python -m benchmarks --only summarize`` prints which build it measured).

Compiling is best effort, and the package behaves the same either way:

* an editable install (``pip install -e .``, what ``make`` sets up for development) stays
  pure Python, so an edited module takes effect at once instead of hiding behind a stale
  compiled copy;
* ``RFHIR_PURE_PYTHON=1`` builds pure Python;
* without mypyc or a working C compiler the build warns and ships pure Python, unless
  ``RFHIR_REQUIRE_COMPILED=1`` (set by CI) makes that an error.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

#: The summarize path: response -> answers -> summary -> scores -> rendering.
COMPILED = (
    "response/answers.py",
    "response/conformance.py",
    "response/itemcheck.py",
    "response/questionnaire.py",
    "response/render.py",
    "response/summary.py",
    "response/values.py",
    "scoring/analysis.py",
    "scoring/clinical.py",
    "scoring/model.py",
    "scoring/safety.py",
    "scoring/score.py",
    "scoring/tables.py",
    "worksheet/summaries.py",
)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _say(message: str) -> None:
    print(f"rejection-fhir build: {message}", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that falls back to pure Python when the C build fails (as MarkupSafe does)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # distutils raises several unrelated types
            self._fall_back(error)

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:
            self._fall_back(error)

    def _fall_back(self, error: Exception) -> None:
        if _flag("RFHIR_REQUIRE_COMPILED"):
            raise error
        _say(f"compiling failed ({type(error).__name__}: {error}); building pure Python")
        self.extensions = []


def _ext_modules() -> list[object]:
    building = any(c in sys.argv for c in ("bdist_wheel", "build_ext", "build", "install"))
    if not building or "editable_wheel" in sys.argv or _flag("RFHIR_PURE_PYTHON"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        if _flag("RFHIR_REQUIRE_COMPILED"):
            raise
        _say("mypyc is not installed; building pure Python")
        return []
    try:
        return list(
            mypycify(
                # Type errors are mypy's job in CI (strict, with every stub); here only the
                # compiled modules' own types matter, so missing third-party stubs do not.
                ["--ignore-missing-imports", *(f"src/rejection_fhir/{m}" for m in COMPILED)],
                opt_level="3",
                group_name="rejection_fhir",
            )
        )
    except (Exception, SystemExit) as error:
        if _flag("RFHIR_REQUIRE_COMPILED"):
            raise
        _say(f"mypyc could not translate the modules ({error}); building pure Python")
        return []


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
