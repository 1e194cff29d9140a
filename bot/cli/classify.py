"""`chanwatch classify`: detection over JSON lines, for analysts and for checking rules.

Input: one JSON object per line with `text` and optional `id`.
Output: one JSON object per input line, in order; a malformed line gets
`{"line": N, "error": "..."}` and the rest is still processed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from bot.detection import (
    Matcher,
    Rule,
    RuleFileError,
    compile_rules,
    detect,
    load_rules,
    parse_rule,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keyword",
        "-k",
        action="append",
        default=[],
        metavar="RULE",
        help="a keyword rule, e.g. пленный, '\"взять в плен\" -not учения' (repeatable)",
    )
    parser.add_argument(
        "--rules",
        metavar="FILE",
        help="a rules file: one rule per line, # comments",
    )
    parser.add_argument(
        "--channel",
        metavar="CHANNEL",
        help="channel of every post, for rules limited with `in @channel` "
        "(a line's own channel_id/channel fields win)",
    )


def _matcher(args: argparse.Namespace) -> Matcher:
    rules: list[Rule] = []
    if getattr(args, "rules", None):
        rules.extend(load_rules(args.rules))
    for number, text in enumerate(getattr(args, "keyword", None) or [], start=1):
        try:
            rules.append(parse_rule(text))
        except ValueError as exc:
            raise RuleFileError(f"--keyword #{number} {text!r}: {exc}") from None
    return compile_rules(rules)


def classify_line(line: str, matcher: Matcher, channel: str | None = None) -> dict[str, Any]:
    """One input line to one output object; raises ValueError on a malformed line."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(item, dict):
        raise ValueError("not a JSON object")
    text = item.get("text")
    if not isinstance(text, str):
        raise ValueError('no "text" string')
    # A post's own channel id/username (either may name the channel in a rule).
    own = tuple(
        str(item[key]) for key in ("channel_id", "channel") if isinstance(item.get(key), str | int)
    )
    result = detect(text, matcher, own or channel)
    out: dict[str, Any] = {"id": item["id"]} if "id" in item else {}
    out.update(result.to_dict())
    return out


def run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    try:
        matcher = _matcher(args)
    except RuleFileError as exc:
        print(f"chanwatch classify: bad rules:\n{exc}", file=sys.stderr)
        return 2
    channel = getattr(args, "channel", None)
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            out = classify_line(line, matcher, channel)
        except ValueError as exc:
            out = {"line": number, "error": str(exc)}
        stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    stdout.flush()
    return 0
