"""Alert messages as Telegram HTML: escaped, matched words in bold, within 4096 characters.

Pure: takes the stored view of an alert and the chat's time zone, returns text.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.alerts import incident_format
from bot.alerts.policy import zone
from storage.outbox import AlertView, Place

LIMIT = 4096  # Telegram's message length, in UTF-16 code units of the visible text
SNIPPET = 700  # characters of post text in a full alert
SHORT = 160  # characters of post text in a compact (burst or digest) entry

_TAG = re.compile(r"<[^>]+>")
_PLURAL = {
    "photo": "photos",
    "video": "videos",
    "document": "documents",
    "audio": "audio files",
    "voice": "voice messages",
    "round": "video messages",
    "sticker": "stickers",
    "animation": "GIFs",
    "webpage": "link previews",
    "poll": "polls",
    "geo": "locations",
    "contact": "contacts",
}


def plain_length(text: str) -> int:
    """Visible length of our HTML as Telegram counts it (UTF-16 code units)."""
    plain = html.unescape(_TAG.sub("", text))
    return len(plain.encode("utf-16-le")) // 2


def esc(text: str) -> str:
    return html.escape(text, quote=False)


def post_link(place: Place) -> str:
    if place.username:
        return f"https://t.me/{place.username}/{place.msg_id}"
    return f"https://t.me/c/{place.channel_id}/{place.msg_id}"


def channel_name(place: Place) -> str:
    return place.title or (
        f"@{place.username}" if place.username else f"channel {place.channel_id}"
    )


def local_time(moment: datetime, tz: str) -> str:
    local = moment.astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or tz)


def _merge(spans: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in spans if int(e) > int(s)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def snippet(text: str, spans: Sequence[Sequence[int]], limit: int = SNIPPET) -> str:
    """Escaped text around the first highlighted span, highlighted words in bold."""
    merged = [(s, e) for s, e in _merge(spans) if e <= len(text)]
    start = 0
    if len(text) > limit and merged:
        start = max(0, merged[0][0] - limit // 4)
        space = text.rfind(" ", 0, start) if start else -1
        start = space + 1 if space > start - 40 else start
    end = min(len(text), start + limit)
    if end < len(text):
        space = text.rfind(" ", start + limit // 2, end)
        end = space if space > 0 else end
    out: list[str] = ["…" if start > 0 else ""]
    pos = start
    for s, e in merged:
        if e <= start or s >= end:
            continue
        s, e = max(s, start), min(e, end)
        out.append(esc(text[pos:s]))
        out.append("<b>" + esc(text[s:e]) + "</b>")
        pos = e
    out.append(esc(text[pos:end]))
    if end < len(text):
        out.append("…")
    return "".join(out).strip()


def media_summary(kinds: Sequence[str], album: bool) -> str:
    if not kinds:
        return ""
    counts = Counter(kinds)
    parts = []
    for kind, n in counts.items():
        name = kind if n == 1 else _PLURAL.get(kind, kind + "s")
        parts.append(f"{n} {name}" if (n > 1 or album) else name)
    return ("album: " if album else "") + ", ".join(parts)


def why(payload: dict[str, Any]) -> str:
    """Why an alert fired, one line: the rules and the claim verdict."""
    parts = []
    for rule in payload.get("rules", ()):
        words = ", ".join(dict.fromkeys(rule.get("words") or ()))
        parts.append(f"rule «{esc(rule['rule'])}»" + (f" ({esc(words)})" if words else ""))
    claim = payload.get("claim")
    if claim:
        text = f"captured-soldier claim, score {claim['score']:.2f}"
        if claim.get("count"):
            text += f", {claim['count']} captive" + ("s" if claim["count"] != 1 else "")
        if claim.get("unverified"):
            text += ", unverified"
        parts.append(text)
    return "; ".join(parts)


def _also(places: Sequence[Place], limit: int = 8) -> str:
    shown = [f'<a href="{post_link(p)}">{esc(channel_name(p))}</a>' for p in places[:limit]]
    more = len(places) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _marks(payload: dict[str, Any]) -> str:
    marks = []
    if payload.get("delayed"):
        marks.append("delayed")
    if payload.get("edited"):
        marks.append("matches after an edit")
    return " · ".join(marks)


def alert(view: AlertView, tz: str) -> str:
    """A full alert message."""
    payload = view.alert.payload
    head = f"🔔 <b>{esc(channel_name(view.place))}</b>"
    if marks := _marks(payload):
        head += f" · <i>{marks}</i>"
    lines = [
        head,
        f'<a href="{post_link(view.place)}">{post_link(view.place)}</a> · '
        f"{local_time(view.date, tz)}",
    ]
    text = payload.get("text", view.text)
    body = snippet(text, payload.get("spans", ()))
    if body:
        lines.append("")
        lines.append(body)
    lines.append("")
    if summary := media_summary(view.media, view.grouped_id is not None):
        lines.append(f"📎 {summary}")
    lines.append(f"Why: {why(payload)}")
    if view.incident is not None:
        lines.append(f"🧩 {esc(incident_format.badge(view.incident))}")
    if view.also_in:
        lines.append(f"Also in: {_also(view.also_in)}")
    if view.deleted:
        lines.append("🗑 deleted since — archived copy kept")
    return fit("\n".join(lines))


def followup(view: AlertView, tz: str) -> str:
    """A short message replying to the original alert: edited or deleted. When the
    original message carried several alerts (a burst), the post is named too."""
    payload = view.alert.payload
    if view.alert.reason == "incident":
        return incident_post(view, tz)
    if view.alert.reason == "deleted":
        line = "🗑 deleted — archived copy kept"
    else:
        text = payload.get("text", view.text)
        head = "✏️ edited"
        if not payload.get("matches", True):
            head += " (no longer matches)"
        body = snippet(text, payload.get("spans", ()), limit=SNIPPET // 2)
        line = f"{head}: {body}" if body else f"{head}: (no text)"
    if view.reply_to is None or view.shared:  # no single original message to point at
        line = f'<a href="{post_link(view.place)}">{esc(channel_name(view.place))}</a> ' + line
    return fit(line)


def incident_post(view: AlertView, tz: str) -> str:
    """A later post of an incident, as a reply to the chat's first alert in it."""
    payload = view.alert.payload
    number = view.incident.id if view.incident is not None else payload.get("incident")
    head = (
        f"🧩 incident #{number} · <b>{esc(channel_name(view.place))}</b> "
        f'<a href="{post_link(view.place)}">{local_time(view.date, tz)}</a>'
    )
    lines = [head]
    if body := snippet(payload.get("text", view.text), payload.get("spans", ()), limit=SHORT):
        lines.append(body)
    extra = []
    if summary := media_summary(view.media, view.grouped_id is not None):
        extra.append(summary)
    if reason := why(payload):
        extra.append(reason)
    if view.incident is not None:
        extra.append(esc(incident_format.size(view.incident)))
    if extra:
        lines.append("<i>" + " · ".join(extra) + "</i>")
    return fit("\n".join(lines))


def entry(view: AlertView, tz: str) -> str:
    """One alert as a compact entry of a burst or a digest."""
    payload = view.alert.payload
    when = local_time(view.date, tz)
    head = f'• <b>{esc(channel_name(view.place))}</b> <a href="{post_link(view.place)}">{when}</a>'
    if marks := _marks(payload):
        head += f" <i>{marks}</i>"
    body = snippet(payload.get("text", view.text), payload.get("spans", ()), limit=SHORT)
    extra = []
    if summary := media_summary(view.media, view.grouped_id is not None):
        extra.append(summary)
    extra.append(why(payload))
    if view.also_in:
        extra.append(f"also in {len(view.also_in)} more")
    if view.deleted:
        extra.append("deleted since")
    # every part is escaped already (why() escapes the rule and its words)
    return head + ("\n" + body if body else "") + "\n<i>" + " · ".join(extra) + "</i>"


def update_entry(view: AlertView, tz: str) -> str:
    """A follow-up (edit or deletion) as a compact entry of a combined message."""
    head = (
        f"• <b>{esc(channel_name(view.place))}</b> "
        f'<a href="{post_link(view.place)}">{local_time(view.date, tz)}</a>'
    )
    if view.alert.reason == "deleted":
        return head + "\n🗑 deleted — archived copy kept"
    payload = view.alert.payload
    what = "✏️ edited" + ("" if payload.get("matches", True) else " (no longer matches)")
    body = snippet(payload.get("text", view.text), payload.get("spans", ()), limit=SHORT)
    return head + f"\n{what}: " + (body or "(no text)")


def combined_entry(view: AlertView, tz: str) -> str:
    """An alert or a follow-up as an entry of a combined message."""
    return update_entry(view, tz) if view.alert.is_followup else entry(view, tz)


def split(header: str, entries: Sequence[str], limit: int = LIMIT) -> list[list[int]]:
    """Group entries (by index, in order) into as few messages as fit under `limit`."""
    room = limit - plain_length(header) - 2
    groups: list[list[int]] = []
    size = 0
    for index, item in enumerate(entries):
        item_size = min(plain_length(item), room) + 2
        if groups and size + item_size <= room + 2:
            groups[-1].append(index)
            size += item_size
        else:
            groups.append([index])
            size = item_size
    return groups


def join(header: str, entries: Sequence[str], limit: int = LIMIT) -> str:
    room = limit - plain_length(header) - 2
    return header + "\n\n" + "\n\n".join(fit(item, room) for item in entries)


def pack(header: str, entries: Sequence[str], limit: int = LIMIT) -> list[str]:
    """Split entries into as few messages as fit, each starting with the header."""
    return [join(header, [entries[i] for i in g], limit) for g in split(header, entries, limit)]


def burst_header(count: int, part: int = 1, parts: int = 1, updates: int = 0) -> str:
    """`⚡ 49 alerts, 7 updates · 1/3`: alerts, and follow-ups (edits, deletions)."""
    if count:
        head = f"⚡ <b>{count} alert{'s' if count != 1 else ''}</b>"
        head += f", {updates} update{'s' if updates != 1 else ''}" if updates else ""
    else:
        head = f"⚡ <b>{updates} update{'s' if updates != 1 else ''}</b>"
    return head + (f" · {part}/{parts}" if parts > 1 else "")


def burst_parts(views: Sequence[AlertView], tz: str) -> list[tuple[str, list[int]]]:
    """Many alerts and follow-ups at once (a burst, a drain after an outage) as few
    messages, in the order given (planning order, so each post's alert comes before
    its edits and deletion); with each message, the indexes of the views it carries."""
    entries = [combined_entry(v, tz) for v in views]
    updates = sum(1 for v in views if v.alert.is_followup)
    alerts = len(views) - updates
    groups = split(burst_header(alerts, 99, 99, updates), entries)
    return [
        (
            join(burst_header(alerts, i, len(groups), updates), [entries[k] for k in group]),
            group,
        )
        for i, group in enumerate(groups, start=1)
    ]


def combined(views: Sequence[AlertView], tz: str) -> str:
    """The rows of one combined message as one message (resent after a crash)."""
    updates = sum(1 for v in views if v.alert.is_followup)
    entries = [combined_entry(v, tz) for v in views]
    return fit(join(burst_header(len(views) - updates, updates=updates), entries))


def burst(views: Sequence[AlertView], tz: str) -> list[str]:
    return [message for message, _ in burst_parts(views, tz)]


def digest(views: Sequence[AlertView], tz: str, now: datetime) -> list[str]:
    day = now.astimezone(zone(tz)).strftime("%Y-%m-%d")
    if not views:
        return [f"📰 <b>Digest {day}</b>: nothing matched since the last digest."]
    header = f"📰 <b>Digest {day}</b>: {len(views)} alert" + ("s" if len(views) != 1 else "")
    # incidents first (most posts first), each with its posts; then everything else
    by_incident: dict[int, list[AlertView]] = {}
    alone: list[AlertView] = []
    for view in views:
        if view.incident is not None:
            by_incident.setdefault(view.incident.id, []).append(view)
        else:
            alone.append(view)
    entries: list[str] = []
    ordered = sorted(by_incident.values(), key=lambda vs: (-len(vs), vs[0].incident.id))  # type: ignore[union-attr]
    for group in ordered:
        incident = group[0].incident
        assert incident is not None
        entries.append(f"🧩 <b>{esc(incident_format.badge(incident))}</b>")
        entries.extend(entry(v, tz) for v in group)
    if by_incident and alone:
        entries.append("<b>Other alerts</b>")
    entries.extend(entry(v, tz) for v in alone)
    return pack(header, entries)


def fit(text: str, limit: int = LIMIT) -> str:
    """Cut our HTML so its visible text fits `limit`, never inside a tag or an entity."""
    if plain_length(text) <= limit:
        return text
    out: list[str] = []
    size = 0
    open_tags: list[str] = []
    for token in re.split(r"(<[^>]+>|&[#\w]+;)", text):
        if not token:
            continue
        if token.startswith("<"):
            name = token.strip("</>").split()[0]
            if token.startswith("</"):
                if open_tags and open_tags[-1] == name:
                    open_tags.pop()
            else:
                open_tags.append(name)
            out.append(token)
            continue
        visible = html.unescape(token) if token.startswith("&") else token
        units = len(visible.encode("utf-16-le")) // 2
        if size + units > limit - 1:
            room = limit - 1 - size
            if not token.startswith("&"):
                cut = ""
                for ch in token:
                    w = len(ch.encode("utf-16-le")) // 2
                    if room - w < 0:
                        break
                    cut += ch
                    room -= w
                out.append(cut)
            break
        out.append(token)
        size += units
    out.append("…")
    out.extend(f"</{name}>" for name in reversed(open_tags))
    return "".join(out)
