"""Regex rules on a linear-time engine (RE2), so no pattern can stall the service.

Python's `re` backtracks: `(a+)+$` against 30 `a` and a `!` takes minutes, on the
event loop. RE2 matches in time linear in the text whatever the pattern, and refuses
what it cannot do in linear time (backreferences, lookarounds) at compile time.

RE2's `\\w`, `\\d`, `\\s` and `\\b` are ASCII-only; analysts write Cyrillic, so the
class escapes are rewritten to their Unicode equivalents (what Python's `re` means by
them) and `\\b`/`\\B`, which RE2 cannot give a Unicode meaning, are refused.
"""

from __future__ import annotations

from typing import Protocol

import re2

MAX_PATTERN = 300  # characters; a rule is typed on a phone, not generated
_MAX_MEM = 4 << 20  # bytes for the compiled program: bounds `(a{999}){999}` and kin

_WORD = r"\p{L}\p{N}_"
_DIGIT = r"\p{Nd}"
_SPACE = r"\t-\r\x{1c}-\x{20}\x{85}\p{Z}"
# escape -> (outside a [class], inside one; None: cannot be written inside one)
_UNICODE: dict[str, tuple[str, str | None]] = {
    "w": (f"[{_WORD}]", _WORD),
    "W": (f"[^{_WORD}]", None),
    "d": (_DIGIT, _DIGIT),
    "D": (r"\P{Nd}", r"\P{Nd}"),
    "s": (f"[{_SPACE}]", _SPACE),
    "S": (f"[^{_SPACE}]", None),
}
_REFUSED = {
    "b": "\\b (word boundary) is not supported; match the letters around the word instead, "
    "e.g. (?:^|[^\\p{L}])word",
    "B": "\\B is not supported",
}
_EXPLAIN = (
    ("invalid escape sequence: \\1", "backreferences (\\1) are not supported"),
    ("invalid perl operator: (?=", "lookaheads and lookbehinds are not supported"),
    ("invalid perl operator: (?!", "lookaheads and lookbehinds are not supported"),
    ("invalid perl operator: (?<", "lookaheads and lookbehinds are not supported"),
    ("invalid repetition size", "repetition counts above 1000 (nested counts multiply)"),
    ("pattern too large", "the pattern is too large"),
)


class Compiled(Protocol):
    def finditer(self, text: str) -> object: ...


def compile_regex(pattern: str) -> Compiled:
    """Compile a rule's regex for RE2, or raise ValueError saying what is wrong."""
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"regex longer than {MAX_PATTERN} characters")
    try:
        translated = _unicode_classes(pattern)
    except ValueError as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}") from None
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEM
    try:
        return re2.compile(translated, options)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        detail = str(detail)
        for needle, meaning in _EXPLAIN:
            if needle in detail:
                detail = meaning
                break
        raise ValueError(
            f"bad regex {pattern!r}: {detail} (regex rules run on RE2, "
            "which matches in linear time)"
        ) from None


def _unicode_classes(pattern: str) -> str:
    r"""Rewrite \w \W \d \D \s \S to Unicode classes; refuse \b \B."""
    out: list[str] = []
    in_class = False
    class_start = 0  # index in `out` where the current class's first item goes
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escape = pattern[i + 1]
            if escape in _REFUSED and not in_class:
                raise ValueError(_REFUSED[escape])
            if escape in _UNICODE:
                outside, inside = _UNICODE[escape]
                if in_class and inside is None:
                    raise ValueError(f"\\{escape} cannot be used inside [...]")
                out.append(inside if in_class else outside)  # type: ignore[arg-type]
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            # a ] right after [ or [^ is a literal, as in Python's re
            if char == "]" and len(out) > class_start:
                in_class = False
        elif char == "[":
            in_class = True
            out.append(char)
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
            class_start = len(out)
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)
