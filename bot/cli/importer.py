"""Import a Telegram Desktop export (`result.json` and its media folders).

Everything is read and validated first; only an export without a single problem
is written, through `Pipeline.ingest(posts, "import")` like every other post, so
a malformed export imports nothing. Re-importing the same export changes
nothing (the archive's upserts are idempotent).

Desktop exports differ from what the watcher sees: ids are bare numbers, there
are no Telegram file ids, no album ids and no view counts, and text comes as a
string or a list of strings and entity objects.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import mimetypes
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loguru import logger

from bot.alerts.policy import Policy
from bot.cli.options import add_db_option
from bot.cli.progress import progress_bar
from bot.pipeline import Pipeline
from bot.pool import DetectionPool
from config.settings import Settings
from storage import archive
from storage import media as media_rows
from storage.archive import Archived
from storage.db import ArchiveTarget, Database, open_database
from storage.models import Forward, Media, Post

CHANNEL_TYPES = frozenset(
    {"public_channel", "private_channel", "public_supergroup", "private_supergroup"}
)
BATCH = 500
MAX_PROBLEMS = 50

_ENTITY_TYPES = {
    "bold": "MessageEntityBold",
    "italic": "MessageEntityItalic",
    "underline": "MessageEntityUnderline",
    "strikethrough": "MessageEntityStrike",
    "code": "MessageEntityCode",
    "pre": "MessageEntityPre",
    "text_link": "MessageEntityTextUrl",
    "link": "MessageEntityUrl",
    "mention": "MessageEntityMention",
    "mention_name": "MessageEntityMentionName",
    "hashtag": "MessageEntityHashtag",
    "cashtag": "MessageEntityCashtag",
    "bot_command": "MessageEntityBotCommand",
    "email": "MessageEntityEmail",
    "phone": "MessageEntityPhone",
    "spoiler": "MessageEntitySpoiler",
    "blockquote": "MessageEntityBlockquote",
    "custom_emoji": "MessageEntityCustomEmoji",
    "bank_card": "MessageEntityBankCard",
}
_MEDIA_KINDS = {
    "video_file": "video",
    "voice_message": "voice",
    "audio_file": "audio",
    "sticker": "sticker",
    "animation": "animation",
    "video_message": "round",
}
_OTHER_MEDIA = {
    "poll": "poll",
    "location_information": "geo",
    "contact_information": "contact",
    "game_title": "game",
    "invoice_information": "invoice",
}


class ImportFailed(Exception):
    """The export cannot be imported; `problems` name each field that is wrong."""

    def __init__(self, source: Path, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        text = "\n".join(f"  {p}" for p in shown) + (f"\n  ... and {more} more" if more else "")
        super().__init__(f"nothing was imported; {source} has problems:\n{text}")


@dataclass(slots=True)
class MediaFile:
    msg_id: int
    idx: int
    sha256: str


@dataclass(slots=True)
class ChatPlan:
    """One channel of the export, validated and converted."""

    channel_id: int
    title: str
    kind: str
    posts: list[Post] = field(default_factory=list)
    service: Counter[str] = field(default_factory=Counter)
    other_skipped: Counter[str] = field(default_factory=Counter)
    media_files: list[MediaFile] = field(default_factory=list)
    media_missing: int = 0


@dataclass(slots=True)
class ImportPlan:
    source: Path
    chats: list[ChatPlan] = field(default_factory=list)
    skipped_chats: list[tuple[str, str]] = field(default_factory=list)  # (name, why)

    @property
    def total_posts(self) -> int:
        return sum(len(chat.posts) for chat in self.chats)


@dataclass(slots=True)
class ChatResult:
    chat: ChatPlan
    statuses: Counter[str] = field(default_factory=Counter)
    channel_created: bool = False


# --- reading and validating ---------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")


def locate(path: Path) -> Path:
    """The result.json of an export folder, or the file itself."""
    if path.is_dir():
        candidate = path / "result.json"
        if not candidate.is_file():
            raise ImportFailed(path, [f"no result.json in {path} (a Telegram Desktop export)"])
        return candidate
    if not path.is_file():
        raise ImportFailed(path, [f"{path} does not exist"])
    return path


def load(path: Path, tz: ZoneInfo | None = None) -> ImportPlan:
    """Read and validate a whole export; ImportFailed lists every problem found."""
    source = locate(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ImportFailed(
            source, [f"line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})"]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFailed(source, [f"cannot read: {exc}"]) from None
    problems = _Problems()
    plan = ImportPlan(source)
    reader = _Reader(source.parent, tz or ZoneInfo("UTC"), problems)
    if not isinstance(data, dict):
        problems.add("(top level)", "not a JSON object (expected a Telegram Desktop export)")
    elif "messages" in data:
        reader.chat(data, "", plan)
    elif isinstance(data.get("chats"), dict) and isinstance(data["chats"].get("list"), list):
        for section in ("chats", "left_chats"):
            chats = data.get(section, {}).get("list", [])
            if not isinstance(chats, list):
                problems.add(f"{section}.list", "not a list")
                continue
            for i, chat in enumerate(chats):
                if not isinstance(chat, dict):
                    problems.add(f"{section}.list[{i}]", "not an object")
                else:
                    reader.chat(chat, f"{section}.list[{i}].", plan)
    else:
        problems.add(
            "(top level)",
            "neither a chat export (name, type, id, messages) "
            "nor a full account export (chats.list)",
        )
    if problems.items:
        raise ImportFailed(source, problems.items)
    return plan


class _Reader:
    def __init__(self, base: Path, tz: ZoneInfo, problems: _Problems) -> None:
        self.base = base.resolve()
        self.tz = tz
        self.problems = problems

    def chat(self, chat: dict[str, Any], where: str, plan: ImportPlan) -> None:
        name = chat.get("name")
        kind = chat.get("type")
        label = name if isinstance(name, str) else f"chat {chat.get('id')}"
        if not isinstance(kind, str):
            self.problems.add(f"{where}type", "missing")
            return
        if kind not in CHANNEL_TYPES:
            plan.skipped_chats.append((label, f"a {kind.replace('_', ' ')}, not a channel"))
            return
        chat_id = chat.get("id")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool) or chat_id <= 0:
            self.problems.add(f"{where}id", f"not a channel id: {chat_id!r}")
            return
        messages = chat.get("messages")
        if not isinstance(messages, list):
            self.problems.add(f"{where}messages", "missing or not a list")
            return
        out = ChatPlan(chat_id, label, kind)
        for i, message in enumerate(messages):
            self.message(message, f"{where}messages[{i}]", out)
        plan.chats.append(out)

    def message(self, msg: Any, where: str, chat: ChatPlan) -> None:
        if not isinstance(msg, dict):
            self.problems.add(where, "not an object")
            return
        before = len(self.problems.items)
        msg_id = msg.get("id")
        if not isinstance(msg_id, int) or isinstance(msg_id, bool) or msg_id <= 0:
            self.problems.add(f"{where}.id", f"not a message id: {msg_id!r}")
        date = self.when(msg, "date", where, required=True)
        kind = msg.get("type")
        if kind == "service":
            if len(self.problems.items) == before:
                chat.service[str(msg.get("action", "unknown"))] += 1
            return
        if kind != "message":
            self.problems.add(f"{where}.type", f"unknown message type {kind!r}")
            return
        edited = self.when(msg, "edited", where, required=False)
        text, entities = self.text(msg, where)
        media = self.media(msg, where, chat, msg_id)
        forward = msg.get("forwarded_from")
        if forward is not None and not isinstance(forward, str):
            self.problems.add(f"{where}.forwarded_from", "not a name")
        reply_to = msg.get("reply_to_message_id")
        if reply_to is not None and not isinstance(reply_to, int):
            self.problems.add(f"{where}.reply_to_message_id", "not a message id")
        author = msg.get("author")
        if len(self.problems.items) != before:
            return
        assert isinstance(msg_id, int) and date is not None
        chat.posts.append(
            Post(
                channel_id=chat.channel_id,
                msg_id=msg_id,
                date=date,
                text=text,
                edit_date=edited,
                entities=tuple(entities),
                fwd_from=Forward(from_name=forward) if "forwarded_from" in msg else None,
                reply_to=reply_to,
                post_author=author if isinstance(author, str) else None,
                reactions=_reactions(msg.get("reactions")),
                media=tuple(media),
                raw=msg,
            )
        )

    def when(
        self, msg: dict[str, Any], name: str, where: str, *, required: bool
    ) -> datetime | None:
        stamp = msg.get(f"{name}_unixtime")
        if stamp is not None:
            if isinstance(stamp, str | int) and str(stamp).isdigit():
                return datetime.fromtimestamp(int(stamp), UTC)
            self.problems.add(f"{where}.{name}_unixtime", f"not a Unix time: {stamp!r}")
            return None
        value = msg.get(name)
        if value is None:
            if required:
                self.problems.add(f"{where}.{name}", "missing")
            return None
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None:
            self.problems.add(f"{where}.{name}", f"not a date: {value!r}")
            return None
        if moment.tzinfo is None:  # Desktop writes the exporting computer's local time
            moment = moment.replace(tzinfo=self.tz)
        return moment.astimezone(UTC)

    def text(self, msg: dict[str, Any], where: str) -> tuple[str, list[dict[str, Any]]]:
        if isinstance(msg.get("text_entities"), list):
            parts, name = msg["text_entities"], "text_entities"
        else:
            parts, name = msg.get("text", ""), "text"
        if isinstance(parts, str):
            return parts, []
        if not isinstance(parts, list):
            self.problems.add(f"{where}.{name}", "neither a string nor a list")
            return "", []
        pieces: list[str] = []
        entities: list[dict[str, Any]] = []
        offset = 0  # Telegram counts entity offsets in UTF-16 code units
        for j, part in enumerate(parts):
            if isinstance(part, str):
                piece, entity = part, None
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                piece, entity = part["text"], _entity(part)
            else:
                self.problems.add(f"{where}.{name}[{j}]", "neither a string nor {type, text}")
                continue
            length = len(piece.encode("utf-16-le")) // 2
            if entity is not None and length:
                entities.append({**entity, "offset": offset, "length": length})
            pieces.append(piece)
            offset += length
        return "".join(pieces), entities

    def media(self, msg: dict[str, Any], where: str, chat: ChatPlan, msg_id: Any) -> list[Media]:
        found: list[Media] = []
        for key in ("photo", "file"):
            ref = msg.get(key)
            if ref is None:
                continue
            if not isinstance(ref, str):
                self.problems.add(f"{where}.{key}", "not a file path")
                continue
            path = self.file(ref, f"{where}.{key}")
            size = _int(msg.get("photo_file_size" if key == "photo" else "file_size"))
            if key == "photo":
                kind, mime, name = "photo", None, None
            else:
                kind = _MEDIA_KINDS.get(str(msg.get("media_type")), "document")
                mime = msg.get("mime_type") if isinstance(msg.get("mime_type"), str) else None
                name = msg.get("file_name") if isinstance(msg.get("file_name"), str) else None
            if path is not None:
                size = path.stat().st_size
                mime = mime or mimetypes.guess_type(path.name)[0]
                chat.media_files.append(MediaFile(msg_id, len(found), _sha256(path)))
            else:
                chat.media_missing += 1
            duration = msg.get("duration_seconds")
            found.append(
                Media(
                    kind=kind,
                    mime=mime or ("image/jpeg" if kind == "photo" else None),
                    size=size,
                    width=_int(msg.get("width")),
                    height=_int(msg.get("height")),
                    duration=float(duration) if isinstance(duration, int | float) else None,
                    file_name=name,
                )
            )
        for key, kind in _OTHER_MEDIA.items():
            if key in msg:
                found.append(Media(kind=kind))
        return found

    def file(self, ref: str, where: str) -> Path | None:
        """The media file on disk, or None when the export left it out."""
        if ref.startswith("("):  # "(File not included. Change data exporting settings ...)"
            return None
        candidate = (self.base / ref).resolve()
        if not candidate.is_relative_to(self.base):
            self.problems.add(where, f"path leaves the export folder: {ref!r}")
            return None
        return candidate if candidate.is_file() else None


def _entity(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind in (None, "plain"):
        return None
    entity: dict[str, Any] = {"_": _ENTITY_TYPES.get(str(kind), "MessageEntityUnknown")}
    if kind == "text_link":
        entity["url"] = part.get("href")
    elif kind == "mention_name":
        entity["user_id"] = part.get("user_id")
    elif kind == "pre":
        entity["language"] = part.get("language") or ""
    elif kind == "custom_emoji":
        entity["document_id"] = part.get("document_id")
    elif kind not in _ENTITY_TYPES:
        entity["type"] = kind
    return entity


def _reactions(value: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("count"), int):
                key = item.get("emoji") or item.get("document_id") or item.get("type")
                found[str(key)] = found.get(str(key), 0) + item["count"]
    return found


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --- writing -------------------------------------------------------------------


async def ingest(
    db: Database,
    plan: ImportPlan,
    *,
    progress: Callable[[int], None] | None = None,
    batch: int = BATCH,
    alert: bool = False,
    policy: Policy | None = None,
) -> list[ChatResult]:
    """Write a validated plan through the pipeline, in batches.

    Imported posts never alert unless `alert` is set; then they alert as late
    posts do (marked delayed, not when older than the policy's maximum age).
    """
    pool = DetectionPool()
    try:
        return await _ingest(
            db, plan, progress, batch, alert, Pipeline(db, policy=policy, pool=pool)
        )
    finally:
        pool.close()


async def _ingest(
    db: Database,
    plan: ImportPlan,
    progress: Callable[[int], None] | None,
    batch: int,
    alert: bool,
    pipeline: Pipeline,
) -> list[ChatResult]:
    results: list[ChatResult] = []
    for chat in plan.chats:
        result = ChatResult(
            chat,
            channel_created=await archive.create_unwatched_channel(db, chat.channel_id, chat.title),
        )
        post_ids: dict[int, int] = {}

        async def batches(posts: Sequence[Post]) -> AsyncIterator[Sequence[Post]]:
            for i in range(0, len(posts), batch):
                yield posts[i : i + batch]

        def done(
            posts: Sequence[Post],
            archived_batch: list[Archived],
            result: ChatResult = result,
            post_ids: dict[int, int] = post_ids,
        ) -> None:
            for archived in archived_batch:
                result.statuses[archived.status] += 1
                post_ids[archived.post.msg_id] = archived.post_id
            if progress is not None:
                progress(len(posts))

        # the next batch is detected (in the worker processes) while one is written
        await pipeline.ingest_stream(
            batches(chat.posts), "import", alert=True if alert else None, done=done
        )
        if chat.media_files:
            await media_rows.record_file_hashes(
                db,
                [
                    (f.sha256, post_ids[f.msg_id], f.idx)
                    for f in chat.media_files
                    if f.msg_id in post_ids
                ],
            )
        results.append(result)
    return results


def report(plan: ImportPlan, results: list[ChatResult]) -> list[str]:
    lines: list[str] = []
    for result in results:
        chat, st = result.chat, result.statuses
        head = f"{chat.title} (channel {chat.channel_id}): {len(chat.posts)} posts"
        if st:
            head += (
                f": {st['new']} new, {st['edited']} updated, {st['unchanged']} already archived"
                + (f", {st['stale']} older than the archived version" if st["stale"] else "")
                + (" (channel added to the archive, not watched)" if result.channel_created else "")
            )
        lines.append(head)
        if chat.service:
            kinds = ", ".join(f"{k} {n}" for k, n in chat.service.most_common())
            lines.append(f"  skipped {sum(chat.service.values())} service messages ({kinds})")
        if chat.media_missing:
            lines.append(
                f"  {chat.media_missing} media files were not included in the export "
                "(their metadata was recorded)"
            )
        if chat.media_files:
            lines.append(f"  {len(chat.media_files)} media files hashed (SHA-256 recorded)")
    for name, why in plan.skipped_chats:
        lines.append(f"skipped {name}: {why}")
    return lines


# --- the command line ---------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", type=Path, metavar="PATH", help="export folder (with result.json) or the file"
    )
    add_db_option(parser)
    parser.add_argument(
        "--timezone",
        default="UTC",
        metavar="TZ",
        help="time zone of the exporting computer, for exports without Unix times (UTC)",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate and report only")
    parser.add_argument(
        "--alert",
        action="store_true",
        help="plan alerts for matching imported posts (as late posts: marked delayed)",
    )


async def _write(
    db_path: ArchiveTarget, plan: ImportPlan, err: TextIO, *, alert: bool, policy: Policy
) -> list[ChatResult]:
    db = await open_database(db_path)
    try:
        with progress_bar("importing", plan.total_posts, err, err.isatty()) as progress:
            return await ingest(db, plan, progress=progress, alert=alert, policy=policy)
    finally:
        await db.close()


def run(
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        tz = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        err.write(f"chanwatch import: --timezone {args.timezone}: unknown time zone\n")
        return 2
    try:
        plan = load(args.path, tz)
    except ImportFailed as exc:
        err.write(f"chanwatch import: {exc}\n")
        return 2
    if args.dry_run:
        out.write(f"{plan.source} is valid: {plan.total_posts} posts would be imported\n")
        results = [ChatResult(chat) for chat in plan.chats]
    else:
        policy = Policy(max_age=settings.alert_max_age)
        write = _write(args.db or settings.db_path, plan, err, alert=args.alert, policy=policy)
        results = asyncio.run(write)
        totals = Counter[str]()
        for result in results:
            totals.update(result.statuses)
        # The summary is printed below; the log gets the same counts, once, at debug.
        logger.bind(source=str(plan.source)).debug(
            "imported a Telegram Desktop export: {new} new, {edited} updated, "
            "{unchanged} already archived of {n} posts",
            new=totals["new"],
            edited=totals["edited"],
            unchanged=totals["unchanged"],
            n=plan.total_posts,
        )
        if args.alert:
            age = settings.alert_max_age
            out.write(
                "alerts were planned for matching posts (delivered by `chanwatch run`"
                + (f"; posts older than {age} are archived only" if age else "")
                + ")\n"
            )
    for line in report(plan, results):
        out.write(line + "\n")
    return 0
