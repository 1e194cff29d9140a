"""The daily digest lists incidents first and carries a PNG chart, through the real bot."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy
from matplotlib import image

from bot.alerts import charts
from bot.alerts.digest import send_digests
from storage import subscribers
from tests.bot_helpers import add_rule, bot_settings, make_analyst, received, service, settled
from tests.incident_helpers import STORY


def non_blank(png: bytes) -> tuple[tuple[int, int], float]:
    """(width, height) and the share of pixels that are not background white."""
    pixels = image.imread(io.BytesIO(png), format="png")
    rgb = pixels[..., :3]
    coloured = numpy.any(rgb < 0.95, axis=-1)
    return (pixels.shape[1], pixels.shape[0]), float(coloured.mean())


def test_chart_png_has_a_size_and_is_drawn() -> None:
    days = [("2023-06-01", "A", 10, 0), ("2023-06-02", "A", 14, 2), ("2023-06-02", "B", 6, 1)]
    png = charts.activity_png(days)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (width, height), drawn = non_blank(png)
    assert (width, height) == (900, 640)
    assert 0.01 < drawn < 0.6  # lines, bars, axes and labels; mostly background


async def test_digest_lists_incidents_first_and_attaches_the_chart(
    sim, monitor, bot, ann, tmp_path: Path
):
    legion = sim.add_channel(username="legion_svoboda", title="Легион «Свобода России»")
    rdk = sim.add_channel(username="rdk_official", title="Русский добровольческий корпус")
    settings = bot_settings(tmp_path, bot, [], "legion_svoboda", "rdk_official")
    story = {p["id"]: p["text"] for p in STORY["posts"] if "text" in p}
    async with service(sim, monitor, bot, settings) as app:
        await make_analyst(app, ann)
        await add_rule(app, ann, "Шебекино")
        await subscribers.set_preferences(app.db, ann.id, digest_at="08:00")
        sim.post(rdk, "Обстрел Шебекино ночью: повреждены линии электропередачи.")
        sim.post(legion, story["claim"])
        sim.post(rdk, story["claim2"])

        async def held() -> bool:
            row = await app.db.fetchone(
                "SELECT count(*) FROM alerts WHERE chat_id = ? AND status = 'digest'", (ann.id,)
            )
            return row[0] == 3

        await settled(app, held)
        reasons = await app.db.fetchall(
            "SELECT reason FROM alerts WHERE chat_id = ? ORDER BY id", (ann.id,)
        )
        assert [r[0] for r in reasons] == ["alert", "alert", "incident"]
        morning = datetime.now(UTC).replace(hour=8, minute=0) + timedelta(days=1)
        assert await send_digests(app.db, app.bot.notifier, morning) == 1
        digest, chart = await received(sim, ann, bot, 2)
        text = digest.text
        assert text.index("🧩 incident #1 · Новая Таволжанка") < text.index("Other alerts")
        assert text.index("Легион") < text.index("Other alerts") < text.index("Обстрел Шебекино")
        assert chart.media is not None and chart.file_bytes is not None
        assert chart.text.startswith("📈 posts and claims per day")
        (width, height), drawn = non_blank(chart.file_bytes)
        assert width == 900 and height == 960  # three panels: volume, claims, incidents
        assert drawn > 0.01
