"""Datasette plugin: /-/charts draws posting volume and claims per day per channel and
the latest incidents' timelines, in the browser (canvas, no external scripts)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from datasette import Response, hookimpl

from storage.chart_queries import DAILY, DAILY_WITHOUT_CLAIMS, INCIDENT_POSTS, INCIDENTS

DAYS = 30
INCIDENT_LIMIT = 8
PAGE = resources.files("bot").joinpath("data/charts.html").read_text(encoding="utf-8")


async def _rows(db: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = await db.execute(sql, params)
    return [dict(row) for row in result.rows]


async def chart_data(datasette: Any, request: Any) -> Response:
    db = datasette.get_database()
    tables = set(await db.table_names())
    columns = set(await db.table_columns("posts")) if "posts" in tables else set()
    data: dict[str, Any] = {"daily": [], "incidents": [], "posts": []}
    if "posts" in tables:
        sql = DAILY if "claim_label" in columns else DAILY_WITHOUT_CLAIMS
        data["daily"] = await _rows(db, sql, {"days": DAYS})
    if "incidents" in tables:
        data["incidents"] = await _rows(db, INCIDENTS, {"limit": INCIDENT_LIMIT})
        data["posts"] = await _rows(db, INCIDENT_POSTS, {"limit": INCIDENT_LIMIT})
    return Response.json(data)


async def chart_page(datasette: Any, request: Any) -> Response:
    return Response.html(PAGE)


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(r"^/-/charts$", chart_page), (r"^/-/charts\.json$", chart_data)]
