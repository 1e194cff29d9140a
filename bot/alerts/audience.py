"""Who wants what: the active subscribers and one matcher compiled from all their rules.

Loaded from storage when first needed and again after a command changes a rule
or a subscriber; the pipeline matches every archived post against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from loguru import logger

from bot.alerts.policy import Hit
from bot.detection import Analysis
from bot.detection.keywords import Matcher, compile_rules, parse_rule
from storage import subscribers
from storage.db import Database
from storage.subscribers import Subscriber


@dataclass(frozen=True, slots=True)
class Audience:
    subscribers: dict[int, Subscriber] = field(default_factory=dict)
    matcher: Matcher | None = None
    owners: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # id -> chat, rule, text

    def hits(self, analysis: Analysis, channel: Sequence[str | int]) -> dict[int, list[Hit]]:
        """The rules of each chat that match a post of `channel` (its id and username)."""
        if self.matcher is None:
            return {}
        found: dict[int, list[Hit]] = {}
        for match in self.matcher.match(analysis, channel=channel):
            chat_id, rule_id, text = self.owners[match.rule_id]
            words = tuple(dict.fromkeys(w.text for w in match.words))
            spans = tuple((w.start, w.end) for w in match.words)
            found.setdefault(chat_id, []).append(Hit(rule_id, text, words, spans))
        return found


async def load(db: Database) -> Audience:
    active = {s.chat_id: s for s in await subscribers.list_all(db, active_only=True)}
    rules = []
    owners: dict[str, tuple[int, int, str]] = {}
    for stored in await subscribers.active_rules(db):
        try:
            rule = parse_rule(stored.text, rule_id=str(stored.id))
        except ValueError as exc:  # a rule saved by an older version that no longer parses
            logger.bind(rule=stored.id, chat=stored.chat_id).warning(
                "skipping rule {text!r}: {error}", text=stored.text, error=str(exc)
            )
            continue
        rules.append(rule)
        owners[rule.id] = (stored.chat_id, stored.id, stored.text)
    matcher = compile_rules(rules) if rules else None
    return Audience(active, matcher, owners)
