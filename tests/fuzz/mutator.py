"""A seeded mutator for JSON-like data, raw bytes and YAML text.

Every choice comes from the ``random.Random`` handed in, so ``(seed, case)`` reproduces a
case exactly.  The mutations are the ones real inputs go wrong with, and hostile ones:
wrong types, missing and unknown fields, huge strings, deep nesting, odd unicode (bidi
overrides, lone surrogates, NUL, zero-width, combining marks), impossible dates and
numbers, null bytes, truncation, YAML aliases and tags.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

ODD_TEXT = [
    "",
    " ",
    "\x00",
    "nul\x00byte",
    "\u202eevil\u202c",  # right-to-left override
    "\u2066isolate\u2069",
    "\ud800",  # lone surrogate
    "\udfff\ud800",
    "\ufeffbom",
    "\ufffe\uffff",
    "zero\u200bwidth\u200d",
    "e\u0301\u0301\u0301\u0301",  # stacked combining marks
    "😀" * 50,
    "𝕱𝖗𝖆𝖐𝖙𝖚𝖗",
    "\r\n\r\n",
    "\t\v\f",
    "\x1b[31mred\x1b[0m",
    "<script>alert(1)</script>",
    "]]><!--",
    "&amp;&lt;",
    "' OR '1'='1",
    "../../etc/passwd",
    "%s%s%n",
    "{{7*7}}",
    "\\u0000",
    "a" * 10_000,
]
BAD_DATES = [
    "2026-02-30",
    "2026-13-01",
    "0000-00-00",
    "99999-01-01",
    "2026-01-01T25:61:61Z",
    "2026-01-01T10:00:00+99:00",
    "2026-1-1",
    "yesterday",
    "2026-01-01T10:00:00.123456789012Z",
    "-2026-01-01",
    "2026-01-01T",
    "T10:00",
    "24:00:00",
    "1e9",
]
ODD_NUMBERS: list[Any] = [
    0,
    -1,
    2**63,
    -(2**63) - 1,
    10**400,
    1e308,
    -1e-308,
    0.1 + 0.2,
    float("inf"),
    float("-inf"),
    float("nan"),
    True,
    False,
]
ODD_KEYS = ["", "__proto__", "resourceType", "item", "\x00", "𝓀𝑒𝓎", "a" * 1000, "linkId"]


def _copy(data: Any) -> Any:
    """A deep copy, or the value itself when it nests too deeply for copy.deepcopy."""
    try:
        return copy.deepcopy(data)
    except RecursionError:
        return data


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice(ODD_NUMBERS)
    if kind == 2:
        return rng.choice(ODD_TEXT)
    if kind == 3:
        return rng.choice(BAD_DATES)
    if kind == 4:
        return rng.choice([[], {}, [None], {"": None}])
    if kind == 5:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randrange(1, 40)))
    return rng.randrange(-1000, 1000)


def deep(depth: int, leaf: Any = 1, rng: random.Random | None = None) -> Any:
    """``depth`` levels of lists/dicts around ``leaf`` (built iteratively: no recursion)."""
    value = leaf
    for level in range(depth):
        use_dict = rng.random() < 0.5 if rng is not None else level % 2 == 0
        value = {"item": value} if use_dict else [value]
    return value


class Mutator:
    """Structural mutations of JSON-like data, byte and text mutations of serialised files."""

    def __init__(
        self,
        rng: random.Random,
        *,
        max_huge: int = 200_000,
        depths: tuple[int, ...] = (20, 100, 300),
    ) -> None:
        self.rng = rng
        self.max_huge = max_huge
        self.depths = depths

    # ------------------------------------------------------------------ structure

    def paths(self, data: Any) -> list[tuple[Any, ...]]:
        """Every path into ``data`` (iteratively), the root included."""
        found: list[tuple[Any, ...]] = [()]
        stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
        while stack and len(found) < 5000:
            path, node = stack.pop()
            children: list[tuple[Any, Any]] = []
            if isinstance(node, dict):
                children = list(node.items())
            elif isinstance(node, list):
                children = list(enumerate(node))
            for key, child in children:
                found.append((*path, key))
                stack.append(((*path, key), child))
        return found

    def replacement(self, old: Any) -> Any:
        """A value of another type, or a hostile one of the same type."""
        rng = self.rng
        choice = rng.randrange(10)
        if choice == 0:
            return self.huge_string()
        if choice == 1:
            return deep(rng.choice(self.depths), rng=rng)
        if choice == 2 and isinstance(old, str):
            cut = rng.randrange(len(old) + 1)
            return old[:cut] + rng.choice(ODD_TEXT) + old[cut:]
        if choice == 3 and isinstance(old, list):
            return old * rng.choice([0, 2, 50])
        if choice == 4 and isinstance(old, dict):
            return list(old.values())
        if choice == 5:
            return str(old)[:50] if not isinstance(old, str) else rng.choice(ODD_NUMBERS)
        return _scalar(rng)

    def huge_string(self) -> str:
        size = self.rng.choice([1000, 20_000, self.max_huge])
        unit = self.rng.choice(["a", "é", "😀", "<b>", "\u202e", "x\x00"])
        return (unit * (size // len(unit) + 1))[:size]

    def mutate(self, data: Any, rounds: int | None = None) -> Any:
        """A mutated deep copy of ``data``; 1-4 mutations unless ``rounds`` says."""
        data = _copy(data)
        for _ in range(rounds if rounds is not None else self.rng.randint(1, 4)):
            data = self._mutate_once(data)
        return data

    def _mutate_once(self, data: Any) -> Any:
        rng = self.rng
        path = rng.choice(self.paths(data))
        if not path:
            return self.replacement(data) if rng.random() < 0.2 else data
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = rng.randrange(6)
        if action == 0 and isinstance(parent, dict):
            del parent[key]  # a missing field
        elif action == 1 and isinstance(parent, dict):
            parent[rng.choice(ODD_KEYS)] = _scalar(rng)  # an unknown or clashing field
        elif action == 2 and isinstance(parent, list):
            parent.insert(rng.randrange(len(parent) + 1), _copy(parent[key]))
        elif action == 3 and isinstance(parent, list):
            parent.pop(key)
        else:
            parent[key] = self.replacement(parent[key])
        return data

    # ------------------------------------------------------------------ bytes and text

    def mutate_bytes(self, raw: bytes) -> bytes:
        rng = self.rng
        data = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            action = rng.randrange(7)
            at = rng.randrange(len(data) + 1)
            if action == 0:
                data[at:at] = b"\x00" * rng.randint(1, 4)
            elif action == 1:
                del data[at:]  # truncated
            elif action == 2 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)  # flipped byte
            elif action == 3:
                data[at:at] = rng.choice(
                    [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xef\xbb\xbf"]
                )
            elif action == 4 and data:
                start = rng.randrange(len(data))
                data[at:at] = data[start : start + rng.randint(1, 200)]
            elif action == 5:
                data[at:at] = rng.choice([b"[" * 3000, b'{"a":' * 3000, b"]]]]", b"}"])
            else:
                data[at:at] = rng.choice(ODD_TEXT).encode("utf-8", "surrogatepass")
        return bytes(data)

    def mutate_json_text(self, data: Any) -> bytes:
        """Either a structural mutation serialised, or a byte mutation of the serialised text."""
        if self.rng.random() < 0.6:
            return dumps(self.mutate(data))
        return self.mutate_bytes(dumps(data))

    def mutate_yaml(self, text: str) -> str:
        rng = self.rng
        if rng.random() < 0.03:  # rare: each costs a parser a second or so
            return YAML_BOMBS[rng.randrange(len(YAML_BOMBS))]
        lines = text.splitlines()
        for _ in range(rng.randint(1, 3)):
            action = rng.randrange(12)
            at = rng.randrange(len(lines) + 1)
            if action == 0:
                lines.insert(at, "\t" + (lines[at - 1] if at else "x: 1"))  # a tab indent
            elif action == 1:
                lines.insert(at, rng.choice(YAML_HOSTILE))
            elif action == 2 and lines:
                del lines[rng.randrange(len(lines))]
            elif action == 3 and lines:
                i = rng.randrange(len(lines))
                lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
            elif action == 4 and lines:
                i = rng.randrange(len(lines))
                lines.insert(i, lines[i])  # a duplicate key
            elif action == 5 and lines:
                i = rng.randrange(len(lines))
                if ": " in lines[i]:
                    key, _, _value = lines[i].partition(": ")
                    lines[i] = f"{key}: {yaml_scalar(rng)}"
            elif action == 7 and lines:
                i = rng.randrange(len(lines))
                lines[i] = lines[i].replace(": ", ": " + rng.choice(ODD_TEXT).replace("\n", " "), 1)
            elif action == 8 and lines:
                i = rng.randrange(len(lines))
                lines[i] = "  " * rng.randint(1, 3) + lines[i]  # wrong indentation
            else:
                lines.insert(
                    at, f"{rng.choice(['x', 'items', 'title', 'linkId'])}: {yaml_scalar(rng)}"
                )
        return "\n".join(lines) + "\n"


YAML_HOSTILE = [
    "!!python/object/apply:os.system ['echo pwned']",
    "x: !!python/name:os.system",
    "x: !!binary aGVsbG8=",
    "x: !custom tag",
    "%YAML 9.9",
    "---",
    "...",
    "x: &a [1, 2]",
    "y: *nope",
    "<<: {a: 1}",
    "? [complex, key]\n: value",
    "x: '" + "unterminated",
    'x: "\\uD800"',
    "x: " + "[" * 200,
    "x: " + "{" * 200,
    "- - - - - - - -",
    "x: 0x1F",
    "x: 1_000",
    "x: .nan",
    "x: 2026-02-30",
    "x: 1e400",
]
YAML_BOMBS = [
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
    "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
    "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n",
    "x: " + "[" * 5000 + "]" * 5000,
    "x: " + "- " * 3000 + "deep",
    "a: &a {self: *a}",
    "name: " + "x" * 1_000_000,
]


def yaml_scalar(rng: random.Random) -> str:
    value = _scalar(rng)
    if isinstance(value, str):
        return json.dumps(value)[:5000]
    if isinstance(value, float) and value != value:
        return ".nan"
    return (
        json.dumps(value) if not isinstance(value, float) or abs(value) != float("inf") else ".inf"
    )


def dumps(data: Any) -> bytes:
    """JSON bytes as a sloppy server or file might hold them (NaN allowed, surrogates kept)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def pick(rng: random.Random, *options: Callable[[], Any]) -> Any:
    return rng.choice(options)()
