"""Querying the archive from the bot: /search (paged with buttons) and /recent."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from bot import format as fmt
from bot import query as searching
from bot.commands.base import Context, Reply, UsageError, command, pager
from config.settings import parse_channel
from storage import search
from storage.search import MARK_END, MARK_START, Filters, QueryError

SEARCH_USAGE = 'Usage: /search <words or "phrase"> [in @channel] [since 2023-06-01]'
RECENT_USAGE = "Usage: /recent @channel [N]"
PAGE = 5
MAX_RESULTS = 100
KEPT_SEARCHES = 200


@dataclass(frozen=True, slots=True)
class _Search:
    query: str
    filters: Filters
    label: str


def _split_options(args: str) -> tuple[str, list[str], str | None]:
    """Pull `in @channel` and `since DATE` off the end of a search."""
    words = args.split()
    channels: list[str] = []
    since: str | None = None
    while len(words) >= 3 and words[-2].lower() in ("in", "since"):
        if words[-2].lower() == "in":
            channels.insert(0, words[-1])
        else:
            since = words[-1]
        words = words[:-2]
    return " ".join(words), channels, since


async def _channel_id(ctx: Context, ref: str) -> int:
    try:
        spec = parse_channel(ref)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(spec.ref, int):
        row = await ctx.db.fetchone("SELECT id FROM channels WHERE id = ?", (spec.ref,))
    else:
        row = await ctx.db.fetchone("SELECT id FROM channels WHERE username = ?", (spec.ref,))
    if row is None:
        raise UsageError(f"{spec.label} is not in the archive; /channels lists watched channels")
    return int(row["id"])


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
            f'• <b>{name}</b> <a href="{hit.link}">{when}</a>{deleted}\n{_marked(hit.snippet)}'
        )
    buttons: list[tuple[str, bytes]] = []
    if page > 0:
        buttons.append(("◀ newer", f"s:{token}:{page - 1}".encode()))
    if len(hits) > (page + 1) * PAGE and (page + 1) * PAGE < MAX_RESULTS:
        buttons.append(("older ▶", f"s:{token}:{page + 1}".encode()))
    return Reply(fmt.fit("\n\n".join(lines)), [buttons] if buttons else None)


@command("search", "full-text search of the archive, any word form, newest first", SEARCH_USAGE)
async def search_(ctx: Context) -> None:
    query, channels, since = _split_options(ctx.args.strip())
    if not query:
        raise UsageError(SEARCH_USAGE)
    try:
        since_at = search.parse_when(since, end=False, option="since") if since else None
        searching.compile_query(query)
    except QueryError as exc:
        raise UsageError(f"{exc}. {SEARCH_USAGE}") from None
    ids = tuple([await _channel_id(ctx, ref) for ref in channels])
    found = _Search(query, Filters(channels=ids, since=since_at), ctx.args.strip())
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
    rows = await ctx.db.fetchall(
        """SELECT p.msg_id, p.date, p.text, p.deleted_at, c.username, c.title, c.id AS cid
           FROM posts p JOIN channels c ON c.id = p.channel_id
           WHERE p.channel_id = ? ORDER BY p.msg_id DESC LIMIT ?""",
        (channel_id, count),
    )
    if not rows:
        ctx.reply("No posts archived from this channel yet.")
        return
    title = rows[0]["title"] or rows[0]["username"] or str(channel_id)
    lines = [f"<b>{fmt.esc(title)}</b>: latest {len(rows)}"]
    for row in rows:
        link = search.post_link(row["username"], row["cid"], row["msg_id"])
        when = fmt.local_time(datetime.fromisoformat(row["date"]), ctx.tz)
        deleted = " <i>(deleted)</i>" if row["deleted_at"] else ""
        lines.append(f'<a href="{link}">{when}</a>{deleted}\n{fmt.snippet(row["text"], (), 200)}')
    ctx.reply(fmt.fit("\n\n".join(lines)))
