"""Who may use the bot: /start (with an invite code), /help, /invite, /revoke, /users, /addgroup."""

from __future__ import annotations

from loguru import logger

from bot.alerts import format as fmt
from bot.commands.base import Context, UsageError, command, ordered
from storage import outbox, subscribers

WELCOME = (
    "Welcome to chanwatch. You will get an alert when a watched channel posts something "
    "that matches your rules or claims soldiers were captured.\n"
    'Start with <code>/rule add пленный</code> or <code>/rule add "взяли в плен"</code>; '
    "/help lists every command."
)
INVITE_PROBLEMS = {
    "unknown": "This invitation code is not valid. Ask an admin for a new one.",
    "used": "This invitation was already used. Ask an admin for a new one.",
    "expired": "This invitation has expired. Ask an admin for a new one.",
}


async def redeem(ctx: Context, code: str) -> None:
    """`/start <code>` from someone who is not a subscriber yet."""
    caller = ctx.caller
    outcome = await subscribers.redeem_invite(
        ctx.db,
        code,
        caller.user_id,
        name=caller.name,
        access_hash=caller.access_hash,
        now=ctx.now,
    )
    log = logger.bind(user=caller.user_id)
    if outcome != "ok":
        # Counted in strangers; a reply and a log line at most once per quiet period, so
        # guessing codes floods neither the stranger's chat nor the log.
        seen = await subscribers.note_stranger(
            ctx.db, caller.user_id, caller.name, bad_code=True, now=ctx.now
        )
        if seen.notify:
            log.warning(
                "invitation refused ({outcome}) for {name}; {bad} wrong codes so far",
                outcome=outcome,
                name=caller.name,
                bad=seen.bad_codes,
            )
            ctx.reply(INVITE_PROBLEMS[outcome])
        return
    log.info("{name} joined with an invitation", name=caller.name)
    ctx.services.pipeline.audience_changed()
    ctx.reply(WELCOME)


@command("start", "welcome and your status", "/start")
async def start(ctx: Context) -> None:
    ctx.reply(WELCOME)


@command("help", "list the commands", "/help")
async def help_(ctx: Context) -> None:
    lines = ["<b>Commands</b>"]
    for cmd in ordered():
        if cmd.admin and not ctx.is_admin:
            continue
        lines.append(f"{fmt.esc(cmd.usage)} — {fmt.esc(cmd.summary)}")
    ctx.reply("\n".join(lines))


@command("invite", "make a one-time invitation link for an analyst", "/invite", admin=True)
async def invite(ctx: Context) -> None:
    if ctx.args.strip():
        raise UsageError("Usage: /invite (no arguments)")
    made = await subscribers.create_invite(
        ctx.db, ctx.caller.user_id, ctx.services.invite_ttl, now=ctx.now
    )
    link = f"https://t.me/{ctx.services.bot_username}?start={made.code}"
    ctx.reply(
        f"One-time invitation, valid until {fmt.local_time(made.expires_at, ctx.tz)}:\n"
        f"{link}\n"
        f"(or send <code>/start {made.code}</code> to the bot). /revoke {made.code} cancels it."
    )


@command(
    "revoke",
    "remove an analyst (or group) or cancel an invitation",
    "/revoke <user id | invitation code>",
    admin=True,
)
async def revoke(ctx: Context) -> None:
    target = ctx.args.strip()
    if not target or " " in target:
        raise UsageError("Usage: /revoke <user id | invitation code>")
    if target.lstrip("-").isdigit():
        chat_id = int(target)
        if chat_id in ctx.services.settings.admin_ids:
            raise UsageError("admins come from CHANWATCH_ADMINS; remove them there")
        sub = await subscribers.get(ctx.db, chat_id)
        if sub is None or not sub.active:
            raise UsageError(f"{chat_id} is not an active analyst; /users lists them")
        await subscribers.deactivate(ctx.db, chat_id, "revoked")
        await outbox.skip_pending_of(ctx.db, chat_id, "revoked")
        ctx.services.pipeline.audience_changed()
        logger.bind(user=chat_id, by=ctx.caller.user_id).info("access revoked")
        ctx.reply(f"Revoked {fmt.esc(sub.name or str(chat_id))}: no more alerts or commands.")
        return
    if await subscribers.cancel_invite(ctx.db, target):
        ctx.reply("Invitation cancelled.")
        return
    raise UsageError(f"{target!r} is neither an analyst's id nor an open invitation")


@command("users", "list analysts, groups and open invitations", "/users", admin=True)
async def users(ctx: Context) -> None:
    lines = ["<b>Subscribers</b>"]
    for sub in await subscribers.list_all(ctx.db):
        rules = len(await subscribers.rules_of(ctx.db, sub.chat_id))
        state = "active" if sub.active else f"inactive ({sub.inactive_reason})"
        extra = []
        if sub.digest_at:
            extra.append(f"digest {sub.digest_at}")
        if sub.muted_until and sub.muted_until > ctx.now:
            extra.append("muted")
        lines.append(
            f"{sub.chat_id} {fmt.esc(sub.name or '?')} — {sub.role}, {state}, {rules} rules"
            + (", " + ", ".join(extra) if extra else "")
        )
    invites = await subscribers.open_invites(ctx.db, now=ctx.now)
    if invites:
        lines.append(f"{len(invites)} open invitations")
    ctx.reply("\n".join(lines))


@command(
    "addgroup", "send alerts to this group chat (use it inside the group)", "/addgroup", admin=True
)
async def addgroup(ctx: Context) -> None:
    if not ctx.caller.is_group:
        raise UsageError("Use /addgroup inside the group chat, after adding the bot to it")
    await subscribers.upsert(
        ctx.db,
        ctx.caller.chat_id,
        "group",
        kind="group",
        name=ctx.caller.name,
        access_hash=ctx.caller.chat_access_hash,
        invited_by=ctx.caller.user_id,
    )
    ctx.services.pipeline.audience_changed()
    ctx.reply("This group will receive alerts. Admins can add rules here with /rule add.")
