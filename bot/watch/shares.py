"""How the configured channels are shared out among the live watchers (pure).

Every watcher runs the same plan from the same rows, one at a time under a lock,
and changes only its own leases: it gives up what it holds beyond its quota or no
longer configured, and takes free channels up to its quota. Quotas split the
channels as evenly as the watchers go, in name order (the first `extra` get one
more), so a watcher that starts takes its share as the others give theirs up, and
one that dies leaves its channels free for the others once its lease expires.

Of what a watcher holds, `live` channels are joined up to the account's join
limit (those it already joins first, so nothing is left and re-joined for
nothing) and polled beyond it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Mode = str  # "live" | "poll"


def key_of(ref: str | int) -> str:
    """The key a configured channel (its reference) is shared out by: its username
    (lower case), or its id."""
    return str(ref)


@dataclass(frozen=True, slots=True)
class Held:
    """A channel held by a watcher, in the mode that watcher reads it."""

    watcher: str
    mode: Mode


@dataclass(slots=True)
class Plan:
    """What one watcher changes of its own leases."""

    claim: dict[str, Mode] = field(default_factory=dict)
    release: list[str] = field(default_factory=list)
    remode: dict[str, Mode] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.claim or self.release or self.remode)


def quotas(total: int, watchers: list[str]) -> dict[str, int]:
    """How many channels each watcher should hold: even, the first ones one more."""
    if not watchers:
        return {}
    base, extra = divmod(total, len(watchers))
    return {name: base + (i < extra) for i, name in enumerate(sorted(watchers))}


def plan(
    me: str,
    channels: Mapping[str, Mode],
    watchers: Mapping[str, int],
    leases: Mapping[str, Held],
) -> Plan:
    """`channels`: every configured channel and the mode configured for it;
    `watchers`: the live watchers (me among them) and each one's join limit;
    `leases`: who holds what now (leases of watchers not live count as free)."""
    result = Plan()
    valid = {key: held for key, held in leases.items() if held.watcher in watchers}
    mine = sorted(key for key, held in valid.items() if held.watcher == me)
    for key in mine:
        if key not in channels:
            result.release.append(key)
    mine = [key for key in mine if key in channels]
    quota = quotas(len(channels), list(watchers)).get(me, 0)
    if len(mine) > quota:
        # give up the newest-sorted extras; a watcher below its quota takes them
        result.release.extend(mine[quota:])
        mine = mine[:quota]
    free = [key for key in channels if key not in valid]
    limit = watchers.get(me, 0)
    live_now = sum(1 for key in mine if valid[key].mode == "live")
    # live channels first while this account can still join, then the rest, by key
    free.sort(key=lambda key: (not (channels[key] == "live" and live_now < limit), key))
    taking = free[: max(quota - len(mine), 0)]
    # modes over everything held after the change: joined ones stay joined
    held = [(key, valid[key].mode) for key in mine] + [(key, "") for key in taking]
    held.sort(key=lambda item: (item[1] != "live", item[0]))
    joined = 0
    for key, current in held:
        mode = "poll"
        if channels[key] == "live" and joined < limit:
            mode = "live"
            joined += 1
        if current == "":
            result.claim[key] = mode
        elif current != mode:
            result.remode[key] = mode
    return result
