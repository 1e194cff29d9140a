"""When and how alerts arrive: /mute, /unmute, /quiet, /tz, /digest."""

from __future__ import annotations

from datetime import datetime

from bot.alerts import format as fmt
from bot.commands import parse
from bot.commands.base import Context, UsageError, command, need_sub
from storage import subscribers

MUTE_USAGE = "Usage: /mute 2h (or 30m, 1d)"
QUIET_USAGE = "Usage: /quiet 23:00-07:00 | /quiet off"
TZ_USAGE = "Usage: /tz Europe/Kyiv"
DIGEST_USAGE = "Usage: /digest 08:00 | /digest off"


@command("mute", "no alerts for a while", MUTE_USAGE)
async def mute(ctx: Context) -> None:
    sub = need_sub(ctx)
    length = parse.duration(ctx.args, usage=MUTE_USAGE)
    until = ctx.now + length
    await subscribers.set_preferences(ctx.db, sub.chat_id, muted_until=until)
    ctx.services.pipeline.audience_changed()
    ctx.reply(
        f"Muted until {fmt.local_time(until, sub.tz)}. Alerts meanwhile are skipped "
        "(the archive keeps every post; /search finds them). /unmute resumes."
    )


@command("unmute", "resume alerts", "/unmute")
async def unmute(ctx: Context) -> None:
    sub = need_sub(ctx)
    if ctx.args.strip():
        raise UsageError("Usage: /unmute (no arguments)")
    await subscribers.set_preferences(ctx.db, sub.chat_id, muted_until=None)
    ctx.services.pipeline.audience_changed()
    ctx.reply("Alerts resumed.")


@command("quiet", "quiet hours: alerts arrive without sound", QUIET_USAGE)
async def quiet(ctx: Context) -> None:
    sub = need_sub(ctx)
    arg = ctx.args.strip()
    if arg.lower() == "off":
        await subscribers.set_preferences(ctx.db, sub.chat_id, quiet_from=None, quiet_to=None)
        ctx.services.pipeline.audience_changed()
        ctx.reply("Quiet hours off.")
        return
    start, end = parse.time_range(arg, usage=QUIET_USAGE)
    await subscribers.set_preferences(ctx.db, sub.chat_id, quiet_from=start, quiet_to=end)
    ctx.services.pipeline.audience_changed()
    ctx.reply(
        f"Quiet hours {start}–{end} ({fmt.esc(sub.tz)}): alerts still arrive, without sound. "
        "/tz sets your time zone."
    )


@command("tz", "your time zone, for dates, quiet hours and the digest", TZ_USAGE)
async def tz(ctx: Context) -> None:
    sub = need_sub(ctx)
    if not ctx.args.strip():
        ctx.reply(f"Your time zone is {fmt.esc(sub.tz)}. {TZ_USAGE}")
        return
    name = parse.zone_name(ctx.args, usage=TZ_USAGE)
    await subscribers.set_preferences(ctx.db, sub.chat_id, tz=name)
    ctx.services.pipeline.audience_changed()
    ctx.reply(f"Time zone set to {fmt.esc(name)} (now {_clock(ctx.now, name)}).")


@command("digest", "one daily digest instead of alerts as they happen", DIGEST_USAGE)
async def digest(ctx: Context) -> None:
    sub = need_sub(ctx)
    arg = ctx.args.strip()
    if not arg:
        raise UsageError(DIGEST_USAGE)
    if arg.lower() == "off":
        await subscribers.set_preferences(ctx.db, sub.chat_id, digest_at=None)
        ctx.services.pipeline.audience_changed()
        ctx.reply("Digest off: alerts arrive as they happen.")
        return
    at = parse.hhmm(arg, usage=DIGEST_USAGE)
    await subscribers.set_preferences(ctx.db, sub.chat_id, digest_at=at)
    ctx.services.pipeline.audience_changed()
    ctx.reply(
        f"Daily digest at {at} ({fmt.esc(sub.tz)}) instead of single alerts. /digest off undoes it."
    )


def _clock(now: datetime, name: str) -> str:
    from bot.alerts.policy import zone

    return now.astimezone(zone(name)).strftime("%H:%M")
