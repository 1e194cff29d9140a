"""Watched channels at run time: /watch, /unwatch, /channels (admins)."""

from __future__ import annotations

from loguru import logger

from bot.alerts import format as fmt
from bot.commands.base import ChannelControl, Context, UsageError, command
from config.settings import parse_channel
from storage import overview
from storage.models import Channel

WATCH_USAGE = "Usage: /watch @channel | https://t.me/channel [poll]"
UNWATCH_USAGE = "Usage: /unwatch @channel"


def _control(ctx: Context) -> ChannelControl:
    if ctx.services.channels is None:
        raise UsageError("channels cannot be changed while the watcher is not running")
    return ctx.services.channels


def _label(channel: Channel) -> str:
    name = f"@{channel.username}" if channel.username else str(channel.id)
    return f"{fmt.esc(channel.title or name)} ({fmt.esc(name)})"


@command("watch", "watch a channel (archive and alert)", WATCH_USAGE, admin=True)
async def watch(ctx: Context) -> None:
    parts = ctx.args.split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] not in ("poll", "live")):
        raise UsageError(WATCH_USAGE)
    text = parts[0] + (":" + parts[1] if len(parts) == 2 else "")
    try:
        spec = parse_channel(text)
    except ValueError as exc:
        raise UsageError(f"{exc}. {WATCH_USAGE}") from None
    control = _control(ctx)
    if any(c.id == spec.ref or c.username == spec.ref for c in control.watched()):
        raise UsageError(f"{spec.label} is already watched; /channels lists them")
    try:
        channel = await control.watch(spec)
    except ValueError as exc:
        ctx.reply(f"Cannot watch {fmt.esc(spec.label)}: {fmt.esc(str(exc))}")
        return
    logger.bind(channel=channel.id, by=ctx.caller.user_id).info("channel added from the bot")
    ctx.reply(f"Watching {_label(channel)} ({channel.mode}).")


@command("unwatch", "stop watching a channel (its archive is kept)", UNWATCH_USAGE, admin=True)
async def unwatch(ctx: Context) -> None:
    ref = ctx.args.strip()
    if not ref or " " in ref:
        raise UsageError(UNWATCH_USAGE)
    try:
        spec = parse_channel(ref)
    except ValueError as exc:
        raise UsageError(f"{exc}. {UNWATCH_USAGE}") from None
    control = _control(ctx)
    channel = next(
        (c for c in control.watched() if c.id == spec.ref or c.username == spec.ref), None
    )
    if channel is None:
        raise UsageError(f"{spec.label} is not watched; /channels lists them")
    await control.unwatch(channel.id)
    logger.bind(channel=channel.id, by=ctx.caller.user_id).info("channel removed from the bot")
    ctx.reply(f"Stopped watching {_label(channel)}. Its archive is kept.")


@command("channels", "list watched channels", "/channels", admin=True)
async def channels(ctx: Context) -> None:
    control = _control(ctx)
    watched = control.watched()
    lines = [f"<b>{len(watched)} watched channels</b>"]
    for channel in watched:
        count = await overview.channel_count(ctx.db, channel.id)
        last = count.last_post
        when = fmt.local_time(last, ctx.tz) if last else "no posts yet"
        problem = f" — ⚠️ {fmt.esc(count.error)}" if count.error else ""
        lines.append(
            f"{_label(channel)} · {channel.mode} · {count.posts} posts · last {when}{problem}"
        )
    for label, reason in control.unavailable_channels().items():
        lines.append(f"⚠️ {fmt.esc(label)}: {fmt.esc(reason)}")
    ctx.reply("\n".join(lines))
