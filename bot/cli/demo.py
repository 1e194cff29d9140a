"""`chanwatch demo`: the whole flow against the loopback Telegram, no account needed.

A simulated Telegram with five channels (a paramilitary group, a legion, a
regional governor, a news channel, the army), the real service watching them, and an
analyst who subscribes through the real bot. A scenario modelled on the
Belgorod border raids of May–June 2023 plays out; every message the analyst's
Telegram receives is printed as they would read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.text import Text
from telethon.helpers import add_surrogate, del_surrogate
from telethon.tl import types

from bot.alerts import charts, incident_format
from bot.alerts.alertbot import BotOptions
from bot.service.app import App
from bot.simulator import SimMessage, Simulator
from config.settings import Backfill, ChannelSpec, Settings
from storage import archive, incidents, overview, private
from storage.models import utcnow

TIMEOUT = 30.0
DEMO_TOKEN = "7000000001:DEMO-chanwatch-token-not-real"


@dataclass
class Step:
    say: str
    act: Callable[[], Any]
    alerts: int = 0  # messages the analyst should receive after this step
    incident: Callable[[], tuple[int, int]] | None = None  # (channel, msg) to show the incident of


def story() -> dict[str, Any]:
    """The Novaya Tavolzhanka story of June 2023, retold (bot/data/tavolzhanka_story.json)."""
    text = resources.files("bot.data").joinpath("tavolzhanka_story.json").read_text("utf-8")
    return json.loads(text)


STORY = story()


def background_posts() -> list[dict[str, Any]]:
    """Real news posts shipped with the package (CC BY 4.0; see bot/data/README.md)."""
    text = resources.files("bot.data").joinpath("demo_news.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def render(message: SimMessage) -> Text:
    """A received message with its bold/italic/link entities applied (UTF-16 offsets)."""
    raw = add_surrogate(message.text)
    styles: list[tuple[int, int, str]] = []
    for entity in message.entities or []:
        style = {
            types.MessageEntityBold: "bold",
            types.MessageEntityItalic: "italic",
            types.MessageEntityTextUrl: "underline cyan",
            types.MessageEntityUrl: "underline cyan",
            types.MessageEntityCode: "green",
        }.get(type(entity))
        if style:
            start = len(del_surrogate(raw[: entity.offset]))
            end = len(del_surrogate(raw[: entity.offset + entity.length]))
            styles.append((start, end, style))
    text = Text(message.text)
    for start, end, style in styles:
        text.stylize(style, start, end)
    return text


class Demo:
    def __init__(self, workdir: Path, console: Console, pace: float) -> None:
        self.workdir = workdir
        self.console = console
        self.pace = pace
        self.sim = Simulator()
        self.seen = 0

    async def run(self, forever: bool) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        private.make_dir(self.workdir)  # the archive and sessions inside are 0600
        async with self.sim:
            await self._play(forever)

    def _world(self) -> None:
        sim = self.sim
        self.monitor = sim.add_user(phone="+10000000001", first_name="Monitor")
        self.analyst = sim.add_user(phone="+10000000002", first_name="Olena", username="olena")
        self.bot = sim.add_bot(username="chanwatch_demo_bot", token=DEMO_TOKEN)
        self.rdk = sim.add_channel(username="rdk_demo", title="Русский добровольческий корпус")
        self.legion = sim.add_channel(username="legion_demo", title="Легион «Свобода России»")
        self.gov = sim.add_channel(username="gladkov_demo", title="Вячеслав Гладков")
        self.news = sim.add_channel(username="news_demo", title="Новости")
        self.mod = sim.add_channel(username="mod_demo", title="Минобороны России")
        history = background_posts()
        self.feed = iter(history[60:])
        start = utcnow() - timedelta(days=2)
        for i, row in enumerate(history[:60]):
            sim.post(self.news, row["text"], date=start + timedelta(minutes=20 * i))
        sim.post(self.rdk, "Мы — русские добровольцы. Наша цель — свободная Россия.", date=start)

    def _settings(self) -> Settings:
        return Settings(
            api_id=1,
            api_hash="0" * 32,
            db_path=self.workdir / "chanwatch-demo.db",
            session_path=self.workdir / "demo.session",
            bot_token=DEMO_TOKEN,
            admin_ids=frozenset({self.analyst.id}),
            channels=tuple(
                ChannelSpec(name)
                for name in ("rdk_demo", "legion_demo", "gladkov_demo", "news_demo", "mod_demo")
            ),
            backfill=Backfill(posts=200),
        )

    async def _play(self, forever: bool) -> None:
        self._world()
        settings = self._settings()
        quick = {"flood_sleep_threshold": 0, "retry_delay": 0.2}
        app = App(
            settings,
            session=self.sim.session_for(self.monitor),
            client_options=quick,
            page_wait=0,
            bot=BotOptions(session=self.sim.session_for(self.bot), client_options=quick),
        )
        self.console.print(
            Panel.fit(
                "chanwatch demo — a simulated Telegram on 127.0.0.1, the real service, "
                "the real bot.\nChannels: @rdk_demo, @legion_demo, @gladkov_demo, @news_demo, "
                "@mod_demo. Analyst: Olena.",
                title="chanwatch",
            )
        )
        task = asyncio.create_task(app.run())
        try:
            async with asyncio.timeout(TIMEOUT):
                await app.ready.wait()
            posts = await self._posts(app)
            self.console.print(f"[green]✓[/] connected; caught up {posts} earlier posts\n")
            await self._subscribe()
            for step in self._scenario():
                await self._step(app, step)
            await self._incident_end(app)
            await self._summary(app, settings)
            if forever:
                await self._replay_forever(app)
        finally:
            app.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, TIMEOUT)

    async def _subscribe(self) -> None:
        for command in (
            "/start",
            "/tz Europe/Kyiv",
            "/claims on",
            "/rule add Белгород",
            '/rule add "Новая Таволжанка"',
        ):
            self.console.print(f"[bold magenta]Olena →[/] {command}")
            await self.sim.user_sends(self.analyst, self.bot, command)
            await self._show(1)

    async def _show(self, count: int) -> None:
        """Wait for `count` more messages to the analyst and print them."""
        if count == 0:
            return
        messages = await self.sim.wait_for_messages(
            self.analyst, from_=self.bot, count=self.seen + count, timeout=TIMEOUT
        )
        for message in messages[self.seen :]:
            self.console.print(
                Panel(render(message), title="🤖 chanwatch bot → Olena", border_style="blue")
            )
        self.seen = len(messages)

    async def _step(self, app: App, step: Step) -> None:
        self.console.print(f"\n[bold yellow]▶[/] {step.say}")
        before = await self._posts(app)
        step.act()
        if step.alerts:
            await self._show(step.alerts)
        else:
            await self._until(app, lambda: self._more_posts(app, before))
            self.console.print("  [dim]archived; nothing sent to Olena[/]")
        if step.incident is not None:
            await self._show_incident(app, *step.incident())
        if self.pace:
            await asyncio.sleep(self.pace)  # pacing for a human reader, not synchronisation

    async def _show_incident(self, app: App, channel_id: int, msg_id: int) -> None:
        assert app.db is not None
        row = await archive.get_post(app.db, channel_id, msg_id)
        newest = row["id"] if row else None
        found = await incidents.of_post(app.db, newest) if newest else None
        if found is None:
            self.console.print("  [dim]in no incident[/]")
            return
        members = await incidents.timeline(app.db, found.id)
        joined = [m for m in members if m.post_id == newest]
        why = incident_format.why_joined(joined[0]) if joined else ""
        self.console.print(f"  [cyan]🧩 {incident_format.badge(found)}[/]\n  [dim]why: {why}[/]")

    async def _more_posts(self, app: App, before: int) -> bool:
        return await self._posts(app) > before

    async def _until(self, app: App, check: Callable[[], Awaitable[bool]]) -> None:
        """Wait, re-checking after each archive write, until `check()` holds."""
        assert app.pipeline is not None
        async with asyncio.timeout(TIMEOUT):
            await app.pipeline.wait_until(check)

    def _scenario(self) -> list[Step]:
        sim = self.sim
        claim: dict[str, int] = {}

        def claim_post() -> None:
            claim["id"] = sim.post(
                self.rdk,
                "Бойцы РДК взяли в плен двоих военнослужащих ВС РФ у Козинки "
                "(Белгородская область). Видео допроса опубликуем позже.",
            )

        def shelling_then_delete() -> None:
            claim["deleted"] = sim.post(
                self.gov, "Обстрел Шебекино Белгородской области: повреждены два дома."
            )

        return [
            Step(
                "@news_demo posts ordinary news (archived; no rule matches)",
                lambda: sim.post(self.news, next(self.feed)["text"]),
            ),
            Step(
                "@rdk_demo: units enter Belgorod region — matches Olena's rule «Белгород»",
                lambda: sim.post(
                    self.rdk,
                    "Сегодня утром подразделения РДК и Легиона «Свобода России» "
                    "вошли на территорию Белгородской области.",
                ),
                alerts=1,
            ),
            Step(
                "@legion_demo posts an album: 3 photos and a video (no rule matches)",
                lambda: sim.post_album(
                    self.legion,
                    [sim.photo(), sim.photo(), sim.photo(), sim.video(duration=42)],
                    caption="Козинка. Фото и видео с позиций.",
                ),
            ),
            Step("@rdk_demo claims two soldiers captured — a claim alert", claim_post, alerts=1),
            Step(
                "@rdk_demo edits the claim: now three — a follow-up to the same alert",
                lambda: sim.edit(
                    self.rdk,
                    claim["id"],
                    "Бойцы РДК взяли в плен троих военнослужащих ВС РФ у Козинки "
                    "(Белгородская область). Видео допроса опубликуем позже.",
                ),
                alerts=1,
            ),
            Step(
                "@news_demo forwards the claim — no second alert for the same post",
                lambda: sim.forward(self.rdk, claim["id"], to=self.news),
            ),
            Step(
                "@gladkov_demo denies it — matches «Белгород»; labelled a denial, not a claim",
                lambda: sim.post(
                    self.gov,
                    "Информация о якобы взятых в плен военнослужащих в Белгородской области "
                    "не соответствует действительности. Ситуация под контролем.",
                ),
                alerts=1,
            ),
            *self._tavolzhanka(claim),
            Step(
                "@gladkov_demo posts about shelling in Shebekino (matches «Белгород»)",
                shelling_then_delete,
                alerts=1,
            ),
            Step(
                "@gladkov_demo deletes that post — a follow-up; the archive keeps the text",
                lambda: sim.delete(self.gov, [claim["deleted"]]),
                alerts=1,
            ),
            Step(
                "@gladkov_demo: «Отопление восстановлено» — contains «плен» as letters only: "
                "no alert",
                lambda: sim.post(
                    self.gov, "В Шебекино отопление и водоснабжение восстановлены полностью."
                ),
            ),
        ]

    def _tavolzhanka(self, made: dict[str, int]) -> list[Step]:
        """June 2023: the groups claim two captives near Novaya Tavolzhanka and offer them
        to the governor; he answers; they say he lacked the courage and show more
        captives; the army says its artillery hit them. One incident, told by four
        channels; Olena's later alerts about it arrive as replies to the first."""
        sim = self.sim
        text = {p["id"]: p.get("text", "") for p in STORY["posts"]}
        minutes = {p["id"]: p["minutes"] for p in STORY["posts"]}
        start = utcnow() - timedelta(minutes=max(minutes.values()))  # as the day went

        def post(key: str, channel: Any, media: Any = None) -> Callable[[], None]:
            def act() -> None:
                when = start + timedelta(minutes=minutes[key])
                made[key] = sim.post(channel, text[key], media=media, date=when)

            return act

        def repost() -> None:
            made["repost"] = sim.forward(self.legion, made["claim"], to=self.news)

        def album() -> None:
            media = [sim.video(duration=35), sim.photo(), sim.photo()]
            when = start + timedelta(minutes=minutes["album"])
            made["album"] = sim.post_album(self.legion, media, text["album"], date=when)[0]

        return [
            Step(
                "@legion_demo: two soldiers captured near Novaya Tavolzhanka, offered to the "
                "governor — a claim alert that opens an incident",
                post("claim", self.legion, sim.video(duration=48)),
                alerts=1,
            ),
            Step(
                "@rdk_demo tells the same story — it joins the incident and arrives as a "
                "reply to the first alert",
                post("claim2", self.rdk, sim.photo()),
                alerts=1,
            ),
            Step(
                "@news_demo reposts the legion's claim — no second alert",
                repost,
                incident=lambda: (self.news.id, made["repost"]),
            ),
            Step(
                "@gladkov_demo answers with a video: he will wait at the Shebekino checkpoint "
                "(no rule matches; it joins the incident because each side names the other)",
                post("reply", self.gov, sim.video(duration=95)),
                incident=lambda: (self.gov.id, made["reply"]),
            ),
            Step(
                "@legion_demo: he «had not found the courage»; the captives go to an exchange",
                post("counter", self.legion),
                incident=lambda: (self.legion.id, made["counter"]),
            ),
            Step(
                "@legion_demo posts an album: «ещё больше пленных» — five more",
                album,
                alerts=1,
            ),
            Step(
                "@mod_demo: artillery hit a «terrorist» group near Novaya Tavolzhanka — matches "
                "«Новая Таволжанка»; it joins the incident by the village, a reply again",
                post("artillery", self.mod),
                alerts=1,
            ),
        ]

    async def _posts(self, app: App) -> int:
        assert app.db is not None
        return await overview.post_count(app.db)

    async def _incident_end(self, app: App) -> None:
        """Olena asks for the story's timeline; the demo draws its chart."""
        assert app.db is not None
        story = next(
            (i for i in await incidents.recent(app.db) if i.title.startswith("Новая Таволжанка")),
            None,
        )
        if story is None:
            return
        command = f"/incident {story.id}"
        self.console.print(f"\n[bold magenta]Olena →[/] {command}")
        await self.sim.user_sends(self.analyst, self.bot, command)
        await self._show(1)
        days = await incidents.daily_counts(app.db, utcnow() - timedelta(days=3), utcnow())
        members = await incidents.timeline(app.db, story.id)
        png = await asyncio.to_thread(charts.activity_png, days, [(story, members)])
        path = self.workdir / "chart.png"
        path.write_bytes(png)
        spark = incident_format.sparkline(incident_format.per_hour(members))
        self.console.print(
            Panel.fit(
                f"{incident_format.badge(story)}\nactivity: {spark}\n"
                f"chart (posts and claims per day per channel, the incident's timeline): {path}",
                title="incident",
            )
        )

    async def _summary(self, app: App, settings: Settings) -> None:
        assert app.db is not None
        totals = await overview.totals(app.db)
        posts, revisions, deleted, claims = (
            totals.posts,
            totals.revisions,
            totals.deleted,
            totals.claims,
        )
        db = settings.db_path.resolve()
        self.console.print(
            Panel.fit(
                f"Archive: {db}\n"
                f"{posts} posts, {revisions} earlier revisions, {deleted} deleted (text kept), "
                f"{claims} captured-soldier claims; {self.seen} messages to Olena.",
                title="done",
            )
        )
        # Outside the box and never wrapped, so each line can be copied and run as is.
        self.console.print("Search it (each line runs as pasted):")
        for line in closing_hints(db):
            self.console.print("  " + line, soft_wrap=True, markup=False, highlight=False)

    async def _replay_forever(self, app: App) -> None:
        self.console.print("\n--forever: replaying real news posts every few seconds; Ctrl-C stops")
        for row in self.feed:
            self.sim.post(self.news, row["text"])
            await asyncio.sleep(max(self.pace, 2.0))
        await asyncio.Event().wait()


def chanwatch_command() -> str:
    """How to run this chanwatch from any directory: the venv's script by its full
    path (the Quick start never puts it on PATH), else this Python with -m bot."""
    script = Path(sys.executable).parent / "chanwatch"
    if script.is_file() and os.access(script, os.X_OK):
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m bot"


def closing_hints(db: Path) -> list[str]:
    """Commands to try on the demo's archive, ready to paste into a shell."""
    exe = chanwatch_command()
    where = shlex.quote(str(db))
    phrase = shlex.quote('"взять в плен"')
    lines = [
        f"{exe} search Белгород --db {where}",
        f"{exe} search {phrase} --claims --db {where}",
        f"{exe} export Белгород --format csv --db {where}",
    ]
    return lines


def run(workdir: Path, forever: bool = False, pace: float = 0.8) -> int:
    console = Console()
    try:
        asyncio.run(Demo(workdir, console, pace).run(forever))
    except TimeoutError:
        console.print("[red]the demo timed out waiting for the service; see the log above[/]")
        return 1
    return 0
