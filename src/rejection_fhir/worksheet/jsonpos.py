"""Where each value of a JSON text stands: ``item[2].repeats`` → (line, column).

A Questionnaire made elsewhere (or built JSON) is checked by the same rules as our YAML,
and its findings must point at ``file:line:column`` just the same.  The standard library's
parser keeps no positions, so this walks the text once more after ``json.loads`` accepted
it; it follows the same grammar and never evaluates anything.  (ruamel.yaml reads JSON
with positions too, as YAML, but 21 times slower than ``json.loads`` and this walk.)
"""

from __future__ import annotations

import contextlib
import re
from json.decoder import scanstring  # type: ignore[attr-defined]  # public, untyped

Pos = tuple[int, int]

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


class _Positions:
    def __init__(self, text: str) -> None:
        self.text = text
        self.found: dict[str, Pos] = {}
        self._line_starts = [0]
        for index, char in enumerate(text):
            if char == "\n":
                self._line_starts.append(index + 1)

    def pos(self, index: int) -> Pos:
        from bisect import bisect_right

        line = bisect_right(self._line_starts, index)
        return line, index - self._line_starts[line - 1] + 1

    def skip(self, index: int) -> int:
        match = _WS.match(self.text, index)
        return match.end() if match else index

    def value(self, index: int, path: str, *, record: bool = True) -> int:
        index = self.skip(index)
        if record:
            self.found.setdefault(path, self.pos(index))
        char = self.text[index : index + 1]
        if char == "{":
            return self.obj(index + 1, path)
        if char == "[":
            return self.array(index + 1, path)
        if char == '"':
            end: int = scanstring(self.text, index + 1)[1]
            return end
        match = _SCALAR.match(self.text, index)
        if match is None:
            raise ValueError(f"not JSON at {self.pos(index)}")
        return match.end()

    def obj(self, index: int, path: str) -> int:
        index = self.skip(index)
        if self.text[index : index + 1] == "}":
            return index + 1
        while True:
            index = self.skip(index)
            key_at = index
            key, index = scanstring(self.text, index + 1)
            child = f"{path}.{key}" if path else key
            # A field's problem points at its key, where the reader sees the field's name
            # (as the YAML positions do).
            self.found[child] = self.pos(key_at)
            index = self.skip(index)
            index = self.value(index + 1, child, record=False)  # past ':'
            index = self.skip(index)
            if self.text[index : index + 1] == ",":
                index += 1
                continue
            return index + 1

    def array(self, index: int, path: str) -> int:
        index = self.skip(index)
        if self.text[index : index + 1] == "]":
            return index + 1
        number = 0
        while True:
            index = self.value(index, f"{path}[{number}]")
            index = self.skip(index)
            number += 1
            if self.text[index : index + 1] == ",":
                index += 1
                continue
            return index + 1


def json_positions(text: str) -> dict[str, Pos]:
    """``{"item[0].repeats": (12, 7), ...}`` for a JSON text ``json.loads`` accepted.

    Fields map to their key's position; array entries and the whole document (``""``) to
    where their value starts.  An unexpected text gives what was found before it.
    """
    walker = _Positions(text)
    with contextlib.suppress(ValueError, IndexError):
        walker.value(0, "")
    return walker.found


def position_of(positions: dict[str, Pos], path: str) -> Pos | None:
    """The position of ``path`` or of its nearest enclosing element that has one."""
    while True:
        if path in positions:
            return positions[path]
        if not path:
            return None
        cut = max(path.rfind("."), path.rfind("["))
        path = path[: max(cut, 0)]
