"""The PostgreSQL form of CHANWATCH_DB: checked with the other settings, shown without
its password."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

URL_SCHEMES = ("postgresql", "postgres")


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def check_url(url: str) -> str | None:
    """What is wrong with a PostgreSQL URL, or None."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in URL_SCHEMES:
        return f"{redact(url)!r} is not a postgresql:// URL"
    if not parts.path.strip("/"):
        return f"{redact(url)!r} names no database: use postgresql://USER@HOST[:PORT]/DBNAME"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{redact(url)!r} has a port that is not a number"
    return None
