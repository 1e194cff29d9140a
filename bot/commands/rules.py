"""An analyst's alert rules: /rule add|list|del and /claims."""

from __future__ import annotations

from bot.alerts import format as fmt
from bot.commands.base import Context, UsageError, command, need_sub
from bot.detection.keywords import normalize_channel, parse_rule
from storage import archive, subscribers

RULE_USAGE = (
    'Usage: /rule add <keyword or "phrase"> [in @channel] [-not word] | /rule list | /rule del N'
)
CLAIMS_USAGE = "Usage: /claims on|off [min score 0–1]"
MAX_RULES = 200
# Keyword rules share one index (a post costs the same with 10 or 10,000); each regex
# scans every post on its own, so an analyst's regexes are counted apart.
MAX_REGEX_RULES = 10


@command("rule", "add, list or delete keyword rules", RULE_USAGE)
async def rule(ctx: Context) -> None:
    action, _, rest = ctx.args.strip().partition(" ")
    action = action.lower()
    if action == "add":
        await _add(ctx, rest.strip())
    elif action in ("list", "ls", ""):
        if rest.strip():
            raise UsageError(RULE_USAGE)
        await _list(ctx)
    elif action in ("del", "delete", "rm"):
        await _delete(ctx, rest.strip())
    else:
        raise UsageError(RULE_USAGE)


async def _add(ctx: Context, text: str) -> None:
    sub = need_sub(ctx)
    if not text:
        raise UsageError(RULE_USAGE)
    try:
        parsed = parse_rule(text, rule_id="new")
    except ValueError as exc:
        raise UsageError(f"{exc}. {RULE_USAGE}") from None
    channel_id = None
    for name in sorted(parsed.channels):
        channel_id = await archive.active_channel_id(ctx.db, name)
        if channel_id is None:
            raise UsageError(f"@{normalize_channel(name)} is not a watched channel; /channels")
    existing = await subscribers.rules_of(ctx.db, sub.chat_id)
    if len(existing) >= MAX_RULES:
        raise UsageError(f"at most {MAX_RULES} rules; delete some with /rule del N")
    if parsed.regex:
        regexes = sum(1 for r in existing if _is_regex(r.text))
        if regexes >= MAX_REGEX_RULES:
            raise UsageError(f"at most {MAX_REGEX_RULES} regex rules; delete some with /rule del N")
    if any(r.text == text for r in existing):
        raise UsageError("you already have this rule; /rule list shows them")
    await subscribers.add_rule(ctx.db, sub.chat_id, text, channel_id)
    ctx.services.pipeline.audience_changed()
    ctx.reply(f"Rule {len(existing) + 1} added: <code>{fmt.esc(text)}</code>")


def _is_regex(text: str) -> bool:
    try:
        return bool(parse_rule(text, rule_id="stored").regex)
    except ValueError:
        return False


async def _list(ctx: Context) -> None:
    sub = need_sub(ctx)
    rules = await subscribers.rules_of(ctx.db, sub.chat_id)
    claims = f"on, score ≥ {sub.claims_min:.2f}" if sub.claims else "off"
    if not rules:
        ctx.reply(f"No keyword rules yet; add one with /rule add. Claim alerts: {claims}.")
        return
    lines = [f"<b>Your rules</b> (claim alerts: {claims})"]
    lines += [f"{i}. <code>{fmt.esc(r.text)}</code>" for i, r in enumerate(rules, start=1)]
    ctx.reply("\n".join(lines))


async def _delete(ctx: Context, arg: str) -> None:
    sub = need_sub(ctx)
    if not arg.isdigit():
        raise UsageError("Usage: /rule del N (the number shown by /rule list)")
    rules = await subscribers.rules_of(ctx.db, sub.chat_id)
    number = int(arg)
    if not 1 <= number <= len(rules):
        raise UsageError(f"no rule {number}; you have {len(rules)} (see /rule list)")
    gone = rules[number - 1]
    await subscribers.delete_rule(ctx.db, sub.chat_id, gone.id)
    ctx.services.pipeline.audience_changed()
    ctx.reply(f"Deleted rule {number}: <code>{fmt.esc(gone.text)}</code>")


@command("claims", "alerts on captured-soldier claims: on/off and minimum score", CLAIMS_USAGE)
async def claims(ctx: Context) -> None:
    sub = need_sub(ctx)
    parts = ctx.args.split()
    if not parts or parts[0].lower() not in ("on", "off") or len(parts) > 2:
        raise UsageError(CLAIMS_USAGE)
    if parts[0].lower() == "off":
        if len(parts) > 1:
            raise UsageError(CLAIMS_USAGE)
        await subscribers.set_preferences(ctx.db, sub.chat_id, claims=0)
        ctx.services.pipeline.audience_changed()
        ctx.reply("Claim alerts off. Keyword rules still alert.")
        return
    minimum = sub.claims_min
    if len(parts) == 2:
        try:
            minimum = float(parts[1].replace(",", "."))
        except ValueError:
            raise UsageError(f"{parts[1]!r} is not a number. {CLAIMS_USAGE}") from None
        if not 0 <= minimum <= 1:
            raise UsageError(f"the minimum score is between 0 and 1. {CLAIMS_USAGE}")
    await subscribers.set_preferences(ctx.db, sub.chat_id, claims=1, claims_min=minimum)
    ctx.services.pipeline.audience_changed()
    ctx.reply(f"Claim alerts on for claims scoring at least {minimum:.2f}.")
