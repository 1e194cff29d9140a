"""Incidents in the bot: /incidents, /incident N and the analyst's corrections
(/incident merge A B, split N POST, remove N POST) and /incident every on|off."""

from __future__ import annotations

from bot.alerts import format as fmt
from bot.alerts import incident_format as ifmt
from bot.commands.base import Context, UsageError, command, need_sub
from storage import incidents, subscribers
from storage.incidents import Incident, Member

INCIDENTS_USAGE = "Usage: /incidents [N] — the N latest incidents (10)"
INCIDENT_USAGE = (
    "Usage: /incident N | /incident merge A B | /incident split N POST | "
    "/incident remove N POST | /incident every on|off (POST: its number in /incident N "
    "or its t.me link)"
)
SHOWN = 15


@command("incidents", "recent incidents: one story across channels", INCIDENTS_USAGE)
async def list_incidents(ctx: Context) -> None:
    arg = ctx.args.strip()
    if arg and not arg.isdigit():
        raise UsageError(INCIDENTS_USAGE)
    limit = min(int(arg or 10), 30)
    found = await incidents.recent(ctx.db, limit=limit)
    if not found:
        ctx.reply("No incidents yet: a claim, denial or exchange opens one when it is archived.")
        return
    lines = ["<b>Incidents</b>, latest first"]
    for i in found:
        lines.append(f"#{i.id} · <b>{fmt.esc(i.title)}</b>\n{fmt.esc(ifmt.size(i))}")
    ctx.reply(fmt.fit("\n".join(lines)))


@command("incident", "an incident's timeline; merge, split or remove a post", INCIDENT_USAGE)
async def incident(ctx: Context) -> None:
    parts = ctx.args.split()
    if not parts:
        raise UsageError(INCIDENT_USAGE)
    action = parts[0].lower()
    if action.lstrip("#").isdigit() and len(parts) == 1:
        await _show(ctx, await _existing(ctx, parts[0]))
    elif action == "merge" and len(parts) == 3:
        await _merge(ctx, parts[1], parts[2])
    elif action in ("split", "remove") and len(parts) == 3:
        await _move(ctx, action, parts[1], parts[2])
    elif action == "every" and len(parts) == 2 and parts[1].lower() in ("on", "off"):
        sub = need_sub(ctx)
        on = parts[1].lower() == "on"
        await subscribers.set_incident_every_post(ctx.db, sub.chat_id, on)
        ctx.reply(
            "Every post of an incident now alerts on its own."
            if on
            else "Later posts of an incident now come as replies to its first alert."
        )
    else:
        raise UsageError(INCIDENT_USAGE)


async def _existing(ctx: Context, ref: str) -> Incident:
    number = ref.lstrip("#")
    if not number.isdigit():
        raise UsageError(f"{ref!r} is not an incident number. {INCIDENT_USAGE}")
    found = await incidents.get(ctx.db, int(number))
    if found is None:
        gone = await incidents.merged_into(ctx.db, int(number))
        if gone:
            raise UsageError(f"incident #{number} was merged into #{gone}; see /incident {gone}")
        raise UsageError(f"no incident #{number}; /incidents lists them")
    return found


async def _show(ctx: Context, found: Incident) -> None:
    members = await incidents.timeline(ctx.db, found.id)
    lines = [
        f"🧩 <b>incident #{found.id} · {fmt.esc(found.title)}</b>",
        fmt.esc(ifmt.size(found)),
        "",
    ]
    for n, m in enumerate(members[:SHOWN], start=1):
        label = "repost" if m.fwd_key else ifmt.LABEL.get(m.label or "none", "post")
        when = fmt.local_time(m.date, ctx.tz)
        text = fmt.esc(" ".join(m.text.split())[:90]) or "<i>(media)</i>"
        lines.append(f'{n}. <a href="{m.link}">{when}</a> <b>{fmt.esc(m.channel)}</b> · {label}')
        lines.append(f"   {text}")
        lines.append(f"   <i>{fmt.esc(ifmt.why_joined(m))}</i>")
    if len(members) > SHOWN:
        lines.append(f"… and {len(members) - SHOWN} more: chanwatch incident {found.id}")
    ctx.reply(fmt.fit("\n".join(lines)))


async def _may_change(ctx: Context, found: Incident) -> None:
    """Admins may correct any incident; an analyst only those they were alerted to."""
    if ctx.is_admin:
        return
    sub = need_sub(ctx)
    if sub.chat_id not in await incidents.alerted_chats(ctx.db, found.id):
        raise UsageError(
            f"incident #{found.id} was not alerted to you by any of your rules; only an analyst "
            "it alerted, or an admin, can change it. Nothing changed."
        )


async def _merge(ctx: Context, a: str, b: str) -> None:
    keep, gone = await _existing(ctx, a), await _existing(ctx, b)
    if keep.id == gone.id:
        raise UsageError(f"#{keep.id} and #{gone.id} are the same incident; nothing to merge")
    await _may_change(ctx, keep)
    await _may_change(ctx, gone)
    await incidents.merge(ctx.db, keep.id, gone.id, need_sub(ctx).chat_id)
    merged = await incidents.get(ctx.db, keep.id)
    assert merged is not None
    ctx.reply(
        f"Merged #{gone.id} into #{keep.id}: {fmt.esc(ifmt.size(merged))}. "
        "Later posts of either story join it."
    )


async def _post_of(ctx: Context, found: Incident, ref: str) -> tuple[int, Member]:
    members = await incidents.timeline(ctx.db, found.id)
    if ref.isdigit():
        number = int(ref)
        if not 1 <= number <= len(members):
            raise UsageError(
                f"incident #{found.id} has {len(members)} posts; POST is 1 to {len(members)} "
                f"(see /incident {found.id})"
            )
        return number, members[number - 1]
    link = ref.rstrip("/").removeprefix("https://").removeprefix("http://")
    for n, m in enumerate(members, start=1):
        if m.link.removeprefix("https://") == link:
            return n, m
    raise UsageError(f"{ref} is not a post of incident #{found.id} (see /incident {found.id})")


async def _move(ctx: Context, action: str, ref: str, post_ref: str) -> None:
    found = await _existing(ctx, ref)
    if found.posts < 2:
        raise UsageError(
            f"incident #{found.id} has only one post; nothing to {action}. Nothing changed."
        )
    number, member = await _post_of(ctx, found, post_ref)
    if action == "split" and number == 1:
        raise UsageError(
            f"post 1 opened incident #{found.id}; split from a later post (2 to {found.posts})"
        )
    await _may_change(ctx, found)
    chat = need_sub(ctx).chat_id
    if action == "split":
        new_id = await incidents.split(ctx.db, found.id, member.post_id, chat)
        left, right = await incidents.get(ctx.db, found.id), await incidents.get(ctx.db, new_id)
        assert left is not None and right is not None
        kept, moved = ifmt.plural(left.posts, "post"), ifmt.plural(right.posts, "post")
        ctx.reply(
            f"Split #{found.id} at post {number}: #{found.id} keeps {kept}, #{new_id} has "
            f"{moved}. Grouping keeps them apart."
        )
        return
    await incidents.remove(ctx.db, found.id, member.post_id, chat)
    ctx.reply(
        f"Removed post {number} ({fmt.esc(member.channel)}) from #{found.id}; grouping will not "
        "put it back."
    )
