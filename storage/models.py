"""Plain records that cross the edge: no Telethon type goes past `bot/telegram.py`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson


@dataclass(frozen=True, slots=True)
class Media:
    kind: str  # photo, video, document, audio, voice, round, sticker, animation, webpage, ...
    mime: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    file_name: str | None = None
    tg_id: int | None = None
    access_hash: int | None = None
    dc_id: int | None = None


@dataclass(frozen=True, slots=True)
class Forward:
    """Where a forwarded post came from."""

    channel_id: int | None = None
    msg_id: int | None = None
    from_name: str | None = None
    user_id: int | None = None
    date: datetime | None = None

    @property
    def key(self) -> str | None:
        if self.channel_id is None or self.msg_id is None:
            return None
        return f"{self.channel_id}/{self.msg_id}"


@dataclass(frozen=True, slots=True)
class Post:
    channel_id: int
    msg_id: int
    date: datetime
    text: str = ""
    edit_date: datetime | None = None
    entities: tuple[dict[str, Any], ...] = ()
    grouped_id: int | None = None
    fwd_from: Forward | None = None
    reply_to: int | None = None
    post_author: str | None = None
    views: int | None = None
    forwards: int | None = None
    replies: int | None = None
    reactions: dict[str, int] = field(default_factory=dict)
    media: tuple[Media, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    def raw_json(self) -> str:
        return canonical_json(self.raw)

    def raw_sha256(self) -> str:
        return hashlib.sha256(self.raw_json().encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    access_hash: int | None
    username: str | None
    title: str | None
    mode: Literal["live", "poll"] = "live"
    last_msg_id: int = 0
    active: bool = True


def canonical_json(value: Any) -> str:
    """Stable JSON (sorted keys, no spaces) so equal records hash equally.

    orjson writes it (a catch-up encodes each post's raw record, ~2 kB, and json took
    ~5 times as long); its text is json's for every value but floats of magnitude
    under 1e-4 or from 1e16 (1e-5 where json writes 1e-05) and NaN or infinities
    (null where json writes NaN), which no Telegram record holds. What orjson refuses
    (keys that are not strings, integers past 64 bits) goes through json."""
    try:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_CANONICAL).decode()
    except orjson.JSONEncodeError:
        return _canonical(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


# One encoder for every record (json.dumps with options builds one per call); the
# same text as json.dumps(value, ensure_ascii=False, sort_keys=True, ...).
_canonical = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=_json_default
).encode
# dates and dataclasses go to _json_default, as with json
_ORJSON_CANONICAL = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with seconds; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def utcnow() -> datetime:
    return datetime.now(UTC)
