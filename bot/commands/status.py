"""/status: what the monitor is doing now."""

from __future__ import annotations

from datetime import timedelta

from bot.alerts import format as fmt
from bot.commands.base import Context, UsageError, command
from storage import outbox, overview


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


@command("status", "channels, last post seen, lag, alert queue, FloodWaits", "/status")
async def status(ctx: Context) -> None:
    if ctx.args.strip():
        raise UsageError("Usage: /status (no arguments)")
    now = ctx.now
    rows = await overview.channel_activity(ctx.db)
    lines = [f"<b>chanwatch status</b> · {fmt.local_time(now, ctx.tz)}"]
    lines.append(f"{len(rows)} channels watched")
    for row in rows:
        name = fmt.esc(row.title or row.username or str(row.id))
        if row.last_post and row.last_seen:
            last, seen = row.last_post, row.last_seen
            lag = max(timedelta(0), seen - last)
            lines.append(
                f"• {name}: last post {_ago(now - last)} ago, archived with {_ago(lag)} lag"
            )
        else:
            lines.append(f"• {name}: no posts yet")
    if ctx.services.channels is not None:
        for label, reason in ctx.services.channels.unavailable_channels().items():
            lines.append(f"⚠️ {fmt.esc(label)}: {fmt.esc(reason)}")
    queue = await outbox.pending_count(ctx.db)
    hour = now - timedelta(hours=1)
    sent = await overview.alerts_sent_since(ctx.db, hour)
    lines.append(f"Alert queue: {queue} waiting; {sent} sent in the last hour")
    floods = ctx.services.status.flood_waits_since(hour) if ctx.services.status else 0
    lines.append(f"FloodWaits in the last hour: {floods}")
    ctx.reply("\n".join(lines))
