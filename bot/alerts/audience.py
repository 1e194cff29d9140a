"""Who wants what: the active subscribers and one matcher compiled from all their rules.

Loaded from storage when first needed and again after a command changes a rule
or a subscriber; the pipeline matches every archived post against it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from loguru import logger

from bot.alerts.policy import Hit
from bot.detection import Analysis
from bot.detection.keywords import Matcher, Rule, WordsMatch, compile_rules, parse_rule
from storage import subscribers
from storage.db import Database
from storage.subscribers import Subscriber

_versions = itertools.count(1)
_new_hit = tuple.__new__  # Hit(...) without the generated __new__


@dataclass(frozen=True, slots=True)
class Audience:
    subscribers: dict[int, Subscriber] = field(default_factory=dict)
    matcher: Matcher | None = None
    owners: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # id -> chat, rule, text
    # which compiled rule set this is: worker processes compile each version once
    version: int = field(default_factory=lambda: next(_versions))

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.matcher.rules if self.matcher is not None else ()

    @property
    def scoped(self) -> bool:
        """Whether some rule is limited to channels (matching then depends on the channel)."""
        return self.matcher is not None and bool(self.matcher.scoped)

    def hits(self, analysis: Analysis, channel: Sequence[str | int]) -> dict[int, list[Hit]]:
        """The rules of each chat that match a post of `channel` (its id and username)."""
        if self.matcher is None:
            return {}
        return self.hits_of(self.matcher.match_words(analysis, channel=channel))

    def hits_of(self, matches: Iterable[WordsMatch]) -> dict[int, list[Hit]]:
        """Matches of the compiled rules as (rule id, distinct words, (start, end) of
        each occurrence), grouped by the chat that owns each rule."""
        found: dict[int, list[Hit]] = {}
        owners = self.owners
        for match_id, words, spans in matches:
            chat_id, rule_id, text = owners[match_id]
            hit = _new_hit(Hit, (rule_id, text, words, spans))
            chat = found.get(chat_id)
            if chat is None:
                found[chat_id] = [hit]
            else:
                chat.append(hit)
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
