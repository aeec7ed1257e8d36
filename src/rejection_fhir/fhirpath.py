"""FHIRPath for calculated scores: a strict syntax check and a cache of compiled expressions.

fhirpathpy's own parser recovers from syntax errors silently, which would let a broken
score formula through validation; we run its grammar with a listener that raises.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any


class FhirPathSyntaxError(ValueError):
    pass


def syntax_error(expression: str) -> str | None:
    """None when ``expression`` parses, else the first syntax error, with its column."""
    from antlr4 import CommonTokenStream, InputStream
    from antlr4.error.ErrorListener import ErrorListener
    from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
    from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

    class Raise(ErrorListener):  # type: ignore[misc]
        def syntaxError(
            self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any
        ) -> None:
            raise FhirPathSyntaxError(f"column {column + 1}: {msg}")

    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(Raise())
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(Raise())
    try:
        tree = parser.expression()
        if parser.getCurrentToken().type != -1:  # trailing input the grammar did not consume
            raise FhirPathSyntaxError(
                f"unexpected '{parser.getCurrentToken().text}' after the expression"
            )
        del tree
    except FhirPathSyntaxError as exc:
        return str(exc)
    return None


@lru_cache(maxsize=512)
def compiled(expression: str) -> Callable[..., list[Any]]:
    """Compile once per expression: scoring evaluates the same few formulas many times."""
    from fhirpathpy import compile as compile_fhirpath

    fn: Callable[..., list[Any]] = compile_fhirpath(expression)
    return fn


def evaluate(
    resource: dict[str, Any], expression: str, context: dict[str, Any] | None = None
) -> list[Any]:
    return compiled(expression)(resource, context or {})
