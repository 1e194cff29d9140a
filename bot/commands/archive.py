"""Querying the archive from the bot: /search (paged with buttons) and /recent."""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot import query as searching
from bot.alerts import format as fmt
from bot.commands.base import Context, Reply, UsageError, command, pager
from config.settings import parse_channel
from storage import archive, overview, search
from storage.search import MARK_END, MARK_START, Filters, QueryError

SEARCH_USAGE = (
    'Usage: /search <words or "phrase"> [in @channel] [since 2023-06-01|yesterday|3d] [until …]'
)
RECENT_USAGE = "Usage: /recent @channel [N]"
PAGE = 5
MAX_RESULTS = 100
KEPT_SEARCHES = 200


@dataclass(frozen=True, slots=True)
class _Search:
    query: str
    filters: Filters
    label: str


_CHANNEL_REF = re.compile(r"^(?:@\w+|(?:https?://)?t\.me/\S+|-?\d{5,})$", re.IGNORECASE)
_AGO = re.compile(r"^(\d+)\s*([dh])$", re.IGNORECASE)


def _split_options(args: str) -> tuple[str, list[str], str | None, str | None]:
    """Pull `in @channel`, `since WHEN` and `until WHEN` off the end of a search.
    Only `in @name`, `in t.me/…` or `in <id>` is a channel: `captured in Bakhmut`
    searches for Bakhmut."""
    words = args.split()
    channels: list[str] = []
    since: str | None = None
    until: str | None = None
    while len(words) >= 3:
        option, value = words[-2].lower(), words[-1]
        if option == "in" and _CHANNEL_REF.match(value):
            channels.insert(0, value)
        elif option == "since" and since is None:
            since = value
        elif option == "until" and until is None:
            until = value
        else:
            break
        words = words[:-2]
    return " ".join(words), channels, since, until


def _when(value: str, *, end: bool, option: str, tz: str, now: datetime) -> datetime:
    """A date (in the analyst's time zone), `today`, `yesterday`, or `3d` / `12h` ago."""
    text = value.strip().lower()
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    ago = _AGO.match(text)
    if text in ("today", "yesterday"):
        day = today - timedelta(days=1 if text == "yesterday" else 0)
        moment = day + timedelta(days=1, microseconds=-1) if end else day
    elif ago:
        unit = timedelta(days=1) if ago.group(2) == "d" else timedelta(hours=1)
        moment = now - int(ago.group(1)) * unit
    else:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise UsageError(
                f"{option}: not a date: {value!r} (use 2023-06-01, today, yesterday, 3d or 12h)"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        day_only = len(value.strip()) == 10
        moment = parsed + timedelta(days=1, microseconds=-1) if end and day_only else parsed
    return moment.astimezone(UTC)


async def _channel_id(ctx: Context, ref: str) -> int:
    try:
        spec = parse_channel(ref)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    channel = await archive.find_channel(ctx.db, spec.ref)
    if channel is None:
        raise UsageError(f"{spec.label} is not in the archive; /channels lists watched channels")
    return channel.id


def _store(ctx: Context, found: _Search) -> str:
    kept: OrderedDict[str, _Search] = ctx.services.state.setdefault("searches", OrderedDict())
    token = secrets.token_hex(4)
    kept[token] = found
    while len(kept) > KEPT_SEARCHES:
        kept.popitem(last=False)
    return token


def _marked(snippet: str) -> str:
    """FTS snippet markers -> bold, everything else escaped."""
    out = fmt.esc(snippet)
    return out.replace(MARK_START, "<b>").replace(MARK_END, "</b>")


def _claim(hit: search.Hit) -> str:
    """The claim detector's verdict when it found one: " · claim 0.94"."""
    if hit.claim_label in (None, "none"):
        return ""
    score = f" {hit.claim_score:.2f}" if hit.claim_score is not None else ""
    return f" · <i>{fmt.esc(hit.claim_label or '')}{score}</i>"


async def _page(ctx: Context, found: _Search, token: str, page: int) -> Reply:
    try:
        hits = await searching.search(
            ctx.db, found.query, found.filters, limit=min(MAX_RESULTS, (page + 1) * PAGE + 1)
        )
    except QueryError as exc:
        raise UsageError(str(exc)) from None
    shown = hits[page * PAGE : (page + 1) * PAGE]
    if not shown:
        return Reply(f"No posts match {fmt.esc(found.label)}.")
    lines = [f"🔎 <b>{fmt.esc(found.label)}</b> — page {page + 1}"]
    for hit in shown:
        when = fmt.local_time(datetime.fromisoformat(hit.date), ctx.tz)
        name = fmt.esc(hit.title or hit.username or str(hit.channel_id))
        deleted = " <i>(deleted)</i>" if hit.deleted_at else ""
        lines.append(
            f'• <b>{name}</b> <a href="{hit.link}">{when}</a>{deleted}{_claim(hit)}\n'
            f"{_marked(hit.snippet)}"
        )
    buttons: list[tuple[str, bytes]] = []
    if page > 0:
        buttons.append(("◀ newer", f"s:{token}:{page - 1}".encode()))
    if len(hits) > (page + 1) * PAGE and (page + 1) * PAGE < MAX_RESULTS:
        buttons.append(("older ▶", f"s:{token}:{page + 1}".encode()))
    return Reply(fmt.fit("\n\n".join(lines)), [buttons] if buttons else None)


@command("search", "full-text search of the archive, any word form, newest first", SEARCH_USAGE)
async def search_(ctx: Context) -> None:
    query, channels, since, until = _split_options(ctx.args.strip())
    if not query:
        raise UsageError(SEARCH_USAGE)
    when = {"tz": ctx.tz, "now": ctx.now}
    since_at = _when(since, end=False, option="since", **when) if since else None
    until_at = _when(until, end=True, option="until", **when) if until else None
    if since_at and until_at and since_at > until_at:
        raise UsageError("since is after until: nothing can match")
    try:
        searching.compile_query(query)
    except QueryError as exc:
        raise UsageError(f"{exc}. {SEARCH_USAGE}") from None
    ids = tuple([await _channel_id(ctx, ref) for ref in channels])
    filters = Filters(channels=ids, since=since_at, until=until_at)
    found = _Search(query, filters, ctx.args.strip())
    token = _store(ctx, found)
    reply = await _page(ctx, found, token, 0)
    ctx.reply(reply.html, reply.buttons)


@pager("s")
async def search_page(ctx: Context, data: str) -> Reply | None:
    token, _, page = data.partition(":")
    kept: OrderedDict[str, _Search] = ctx.services.state.get("searches", OrderedDict())
    found = kept.get(token)
    if found is None or not page.isdigit():
        return None
    return await _page(ctx, found, token, int(page))


@command("recent", "the latest posts of a channel", RECENT_USAGE)
async def recent(ctx: Context) -> None:
    parts = ctx.args.split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise UsageError(RECENT_USAGE)
    count = int(parts[1]) if len(parts) == 2 else 5
    if not 1 <= count <= 20:
        raise UsageError("N is between 1 and 20")
    channel_id = await _channel_id(ctx, parts[0])
    posts = await overview.recent_posts(ctx.db, channel_id, count)
    if not posts:
        ctx.reply("No posts archived from this channel yet.")
        return
    title = posts[0].title or posts[0].username or str(channel_id)
    lines = [f"<b>{fmt.esc(title)}</b>: latest {len(posts)}"]
    for post in posts:
        link = search.post_link(post.username, post.channel_id, post.msg_id)
        when = fmt.local_time(post.date, ctx.tz)
        deleted = " <i>(deleted)</i>" if post.deleted else ""
        lines.append(f'<a href="{link}">{when}</a>{deleted}\n{fmt.snippet(post.text, (), 200)}')
    ctx.reply(fmt.fit("\n\n".join(lines)))
