"""The compiled build: setup.py's modules are C extensions when (and only when) expected.

``make compiled-test`` runs the unit and fuzz tests against the build ``pip install .``
makes, with RFHIR_EXPECT_COMPILED=1; the development venv is an editable, pure-Python
install.  Either way the hot path is all compiled or all Python, never a mix of the two
(a compiled module calling a stale pure one, or the reverse, would measure and behave as
neither build).  That the two builds behave alike is what the rest of the suite shows,
run against each.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import os
from pathlib import Path

COMPILED = ast.literal_eval(
    next(
        node.value
        for node in ast.parse((Path(__file__).parents[2] / "setup.py").read_text()).body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets)
    )
)


def _is_extension(module_name: str) -> bool:
    module = importlib.import_module(module_name)
    return str(module.__file__).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_the_hot_path_is_all_compiled_or_all_python():
    names = [f"rejection_fhir.{path.removesuffix('.py').replace('/', '.')}" for path in COMPILED]
    assert len(names) >= 9 and all(importlib.util.find_spec(n) for n in names)
    compiled = {name: _is_extension(name) for name in names}
    expected = os.environ.get("RFHIR_EXPECT_COMPILED", "").lower() in {"1", "true", "yes"}
    if expected:
        assert all(compiled.values()), [n for n, c in compiled.items() if not c]
    else:
        assert len(set(compiled.values())) == 1, compiled
