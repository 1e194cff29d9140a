"""Search semantics over a real archive file built through the pipeline."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import parser as cli
from bot.cli import search as search_cmd
from bot.pipeline import Pipeline
from bot.query import compile_query, search
from storage import archive
from storage.db import Database, open_database
from storage.models import Channel, Post
from storage.search import (
    MARK_END,
    MARK_START,
    FeatureUnavailable,
    Filters,
    QueryError,
    has_column,
    parse_when,
)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

POSTS = [
    # (channel, msg_id, day offset, text)
    (100, 1, 0, "В районе Работино взяли в плен двух военнослужащих."),
    (100, 2, 1, "Обмен пленными состоялся на границе, вернулись 90 пленных."),
    (100, 3, 2, "Наступление продолжается, выступление министра отложено."),
    (200, 1, 3, "Пленный рассказал о потерях. Белгородской области ничего не угрожает."),
    (200, 2, 4, "Губернатор сообщил об обстреле Белгорода."),
    (200, 3, 5, "Новый пленный записал обращение; обмен не обсуждается."),
]


def _post(channel: int, msg_id: int, day: int, text: str) -> Post:
    return Post(
        channel_id=channel,
        msg_id=msg_id,
        date=T0 + timedelta(days=day),
        text=text,
        raw={"id": msg_id, "message": text},
    )


async def build(path: Path | str) -> Database:
    database = await open_database(path)
    await archive.save_channel(database, Channel(100, 1, "frontnews", "Front news"))
    await archive.save_channel(database, Channel(200, 2, None, "Private digest"))
    pipeline = Pipeline(database)
    for channel in (100, 200):
        await pipeline.ingest(
            [_post(c, m, d, t) for c, m, d, t in POSTS if c == channel], "catchup"
        )
    return database


@pytest.fixture
async def db(archive_target: Path | str) -> AsyncIterator[Database]:
    database = await build(archive_target)
    yield database
    await database.close()


@pytest.fixture
def db_file(archive_target: Path | str) -> Path | str:
    """An archive (file or URL) for the command line (which runs its own event loop)."""

    async def make() -> None:
        await (await build(archive_target)).close()

    asyncio.run(make())
    return archive_target


async def ids(db: Database, query: str, **kw: object) -> list[tuple[int, int]]:
    filters = kw.pop("filters", Filters())
    hits = await search(db, query, filters, **kw)  # type: ignore[arg-type]
    return [(h.channel_id, h.msg_id) for h in hits]


async def test_a_word_finds_its_inflections_newest_first(db: Database) -> None:
    # пленный -> пленных, пленными, Пленный; never "наступление" (substring "плен")
    assert await ids(db, "пленный") == [(200, 3), (200, 1), (100, 2)]
    # a place name finds its adjectives too, as the rule «Белгород» alerts on them
    assert await ids(db, "Белгород") == [(200, 2), (200, 1)]
    assert await ids(db, "белгородский") == [(200, 1)]


async def test_phrase_matches_words_in_order_in_any_inflection(db: Database) -> None:
    assert await ids(db, '"взять в плен"') == [(100, 1)]
    assert await ids(db, '"взяли в плен"') == [(100, 1)]
    assert await ids(db, '"плен в взяли"') == []


async def test_prefix_searches_the_text(db: Database) -> None:
    assert await ids(db, "плен*") == [(200, 3), (200, 1), (100, 2), (100, 1)]
    assert await ids(db, "выступ*") == [(100, 3)]


async def test_boolean_operators(db: Database) -> None:
    assert await ids(db, "пленный обмен") == [(200, 3), (100, 2)]
    assert await ids(db, "пленный AND обмен") == [(200, 3), (100, 2)]
    assert await ids(db, "пленный NOT обмен") == [(200, 1)]
    assert await ids(db, "пленный -обмен") == [(200, 1)]
    assert await ids(db, "NOT обмен пленный") == [(200, 1)]
    assert await ids(db, "Белгород OR наступление") == [(200, 2), (200, 1), (100, 3)]
    assert await ids(db, "(Белгород OR наступление) губернатор") == [(200, 2)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty"),
        ('"взяли в плен', "unterminated quote"),
        ("(пленный OR обмен", "never closed"),
        ("пленный)", "unexpected ')'"),
        ("пленный OR", "after 'OR'"),
        ("NOT обмен", "cannot only exclude"),
        ("***", "no letters"),
        ("п*", "at least 2 letters"),
    ],
)
async def test_malformed_query_is_explained(db: Database, query: str, message: str) -> None:
    with pytest.raises(QueryError, match=re.escape(message)):
        await search(db, query)


async def test_fts_syntax_in_user_input_is_searched_as_words(db: Database) -> None:
    # raw FTS5 syntax would raise a syntax error or search a column; here it is words
    for query in ["text:пленный", "NEAR(пленный обмен)", "пленный^", '"a""b"', "lemmas : *"]:
        try:
            await search(db, query)
        except QueryError as exc:
            assert "no letters" in str(exc)
    assert await ids(db, "text:пленный") == []  # the phrase "text пленный"


async def test_filters_channel_dates_and_limit(db: Database) -> None:
    only_200 = Filters(channels=(200,))
    assert await ids(db, "пленный", filters=only_200) == [(200, 3), (200, 1)]
    day = Filters(
        since=parse_when("2024-03-02", end=False, option="--since"),
        until=parse_when("2024-03-04", end=True, option="--until"),
    )
    assert await ids(db, "плен*", filters=day) == [(200, 1), (100, 2)]
    assert await ids(db, "пленный", limit=1) == [(200, 3)]
    with pytest.raises(QueryError, match="not a date"):
        parse_when("03/02/2024", end=False, option="--since")


async def test_deleted_posts_are_hidden_unless_asked(db: Database) -> None:
    await archive.mark_deleted(db, 200, [3])
    assert await ids(db, "пленный") == [(200, 1), (100, 2)]
    hits = await search(db, "пленный", Filters(include_deleted=True))
    assert [(h.msg_id, h.deleted_at is not None) for h in hits] == [
        (3, True),
        (1, False),
        (2, False),
    ]


async def test_rank_orders_by_relevance(db: Database) -> None:
    newest = await ids(db, "пленный OR обмен")
    ranked = await ids(db, "пленный OR обмен", rank=True)
    assert sorted(newest) == sorted(ranked)
    assert ranked[0] in {(100, 2), (200, 3)}  # the posts with both words rank first


async def test_links_and_highlighted_snippets(db: Database) -> None:
    hits = await search(db, "пленный")
    by_id = {(h.channel_id, h.msg_id): h for h in hits}
    assert by_id[(100, 2)].link == "https://t.me/frontnews/2"
    assert by_id[(200, 3)].link == "https://t.me/c/200/3"
    # matched on lemmas only ("пленными", "пленных"): highlighted all the same
    assert f"{MARK_START}пленными{MARK_END}" in by_id[(100, 2)].snippet
    assert f"{MARK_START}пленных{MARK_END}" in by_id[(100, 2)].snippet
    prefix = await search(db, "выступ*")
    assert f"{MARK_START}выступление{MARK_END}" in prefix[0].snippet
    assert MARK_START not in prefix[0].snippet.replace(f"{MARK_START}выступление", "")


async def _drop_claims_column(db: Database) -> None:
    """Turn the archive into one from before detection results were stored."""
    if not await has_column(db, "posts", "claim_label"):
        return
    if db.dialect == "postgresql":  # drops the column's index with it
        await db.execute("DROP VIEW IF EXISTS archive_posts")
        await db.execute("ALTER TABLE posts DROP COLUMN claim_label")
        return
    for row in await db.fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'posts' "
        "AND sql LIKE '%claim_label%'"
    ):
        await db.execute(f'DROP INDEX "{row[0]}"')
    await db.execute("DROP VIEW IF EXISTS archive_posts")  # newer than detection results
    await db.execute("ALTER TABLE posts DROP COLUMN claim_label")


async def test_claims_filter_needs_the_detection_column(db: Database) -> None:
    await _drop_claims_column(db)
    with pytest.raises(FeatureUnavailable, match="not available in this archive yet"):
        await search(db, "пленный", Filters(claims=True))


async def test_claims_filter_when_the_column_exists(db: Database) -> None:
    if not await has_column(db, "posts", "claim_label"):
        await db.execute("ALTER TABLE posts ADD COLUMN claim_label TEXT")
    await db.execute("UPDATE posts SET claim_label = NULL")  # whatever detection said
    await db.execute("UPDATE posts SET claim_label = 'claim' WHERE channel_id = 100 AND msg_id = 1")
    await db.execute("UPDATE posts SET claim_label = 'exchange' WHERE msg_id = 2")
    assert await ids(db, "плен*", filters=Filters(claims=True)) == [(100, 1)]


def test_compiled_query_contains_only_quoted_strings() -> None:
    fts = compile_query('пленный OR "взяли в плен" -обмен плен* (a OR b)').fts
    outside_strings = re.sub(r'"(?:[^"]|"")*"', " ", fts)
    assert set(outside_strings.replace("(", " ").replace(")", " ").split()) == {
        "OR",
        "AND",
        "NOT",
        "lemmas",
        "text",
        ":",
        "*",
    }


# --- the command line ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI replaces loguru's handlers; the suite's own handlers must stay."""
    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)


def _cli(db_file: Path | str, *argv: str) -> list[str]:
    return ["--env-file", "/nonexistent.env", argv[0], "--db", str(db_file), *argv[1:]]


def test_cli_plain_output_when_piped(db_file: Path | str, capsys) -> None:
    assert cli.main(_cli(db_file, "search", "пленный", "--channel", "@frontnews")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "2024-03-02 09:00\t@frontnews\thttps://t.me/frontnews/2\t"
        "Обмен **пленными** состоялся на границе, вернулись 90 **пленных**."
    ]


def test_cli_json_and_csv(db_file: Path | str, capsys) -> None:
    assert cli.main(_cli(db_file, "search", "обмен", "--format", "json")) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["channel_id"], r["msg_id"]) for r in records] == [(200, 3), (100, 2)]
    assert records[1]["link"] == "https://t.me/frontnews/2"
    assert cli.main(_cli(db_file, "search", "обмен", "--format", "csv")) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("date,channel_id,channel")
    assert len(out.splitlines()) == 3


def test_cli_errors_are_messages_not_tracebacks(db_file: Path | str, capsys) -> None:
    assert cli.main(_cli(db_file, "search", '"взяли в плен')) == 2
    assert "unterminated quote" in capsys.readouterr().err
    assert cli.main(_cli(db_file, "search", "пленный", "--channel", "nosuch")) == 2
    assert "no such channel" in capsys.readouterr().err
    assert cli.main(_cli(db_file, "search", "пленный", "--since", "yesterday")) == 2
    assert "not a date" in capsys.readouterr().err
    missing = ["--env-file", "/nonexistent.env", "search", "x", "--db", "/nonexistent.db"]
    assert cli.main(missing) == 3
    assert "no archive at /nonexistent.db" in capsys.readouterr().err


async def test_rich_table_on_a_terminal(db: Database) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    hits = await search(db, "Белгород")
    search_cmd.write_hits(hits, "table", out)
    text = out.getvalue()
    assert "https://t.me/c/200/2" in text and "Белгорода" in text


# --- what analysts paste and where they read it ---------------------------------


async def test_punctuation_in_a_pasted_query_is_ignored(db: Database) -> None:
    assert await ids(db, "Белгород — губернатор") == await ids(db, "Белгород губернатор")
    assert await ids(db, "пленный + обмен") == [(200, 3), (100, 2)]
    assert await ids(db, "пленный / обмен, -") == [(200, 3), (100, 2)]
    assert await ids(db, "пленный —обмен") == [(200, 1)]  # a dash glued to a word excludes it


def test_cli_minus_word_needs_no_double_dash(db_file: Path, capsys) -> None:
    assert cli.main(_cli(db_file, "search", "пленный", "-обмен", "--format", "json")) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["channel_id"], r["msg_id"]) for r in records] == [(200, 1)]
    assert cli.main(_cli(db_file, "search", "-обмен")) == 2  # reaches the query parser
    assert "cannot only exclude" in capsys.readouterr().err


async def test_piped_marks_are_unambiguous_when_the_text_holds_stars(tmp_path: Path) -> None:
    database = await open_database(tmp_path / "stars.db")
    try:
        await archive.save_channel(database, Channel(100, 1, "frontnews", "Front news"))
        text = "**Срочно** 2*3: пленных \\ обменяли"
        await Pipeline(database).ingest([_post(100, 1, 0, text)], "catchup")
        out = io.StringIO()
        search_cmd.write_hits(await search(database, "пленный"), "table", out)
    finally:
        await database.close()
    snippet = out.getvalue().rstrip("\n").split("\t")[-1]
    assert snippet == r"\*\*Срочно\*\* 2\*3: **пленных** \\ обменяли"


@pytest.mark.parametrize("columns", [80, 100])
async def test_terminal_table_gives_the_snippet_the_width(
    db: Database, monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("COLUMNS", str(columns))
    out = Terminal()
    hits = await search(db, "пленный")
    search_cmd.write_hits(hits, "table", out)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()).splitlines()
    assert max(len(line) for line in lines) <= columns
    # the post column: everything right of the first inner border
    cells = [line.split("│")[2] for line in lines if line.count("│") == 3]
    assert min(len(c) for c in cells) >= columns - 25
    words = " ".join(" ".join(c.split()) for c in cells)
    for hit in hits:  # every snippet is there whole, and its link
        plain = hit.snippet.replace(MARK_START, "").replace(MARK_END, "")
        assert " ".join(plain.split()) in words, plain
        assert hit.link in words.replace(" ", "") or hit.link in words


async def test_a_place_name_is_looked_up_only_by_the_forms_the_archive_holds(
    db: Database,
) -> None:
    from bot.query import prepare

    every_form = compile_query("Белгород")
    held = await prepare(db, "Белгород")
    assert len(held.fts) < len(every_form.fts) / 5
    assert "белгородский" in held.fts and "белгородец" not in held.fts
    assert await ids(db, held) == await ids(db, every_form) == [(200, 2), (200, 1)]


async def test_a_phrase_is_found_past_many_candidates_that_only_hold_its_words(
    archive_target: Path | str,
) -> None:
    """More candidates than one round reads, most of them the phrase's words out of
    order: what the text check keeps is the same on both backends, with filters."""

    def at(channel: int, msg_id: int, hours: int, text: str) -> Post:
        return Post(
            channel_id=channel,
            msg_id=msg_id,
            date=T0 + timedelta(hours=hours),
            text=text,
            raw={"id": msg_id, "message": text},
        )

    database = await open_database(archive_target)
    await archive.save_channel(database, Channel(100, 1, "frontnews", "Front news"))
    await archive.save_channel(database, Channel(200, 2, None, "Private digest"))
    pipeline = Pipeline(database)
    phrase = [(100, 1, 0), (200, 1, 1), (100, 2, 2), (100, 3, 3), (200, 2, 4)]  # oldest first
    for channel in (100, 200):
        await pipeline.ingest(
            [
                at(c, m, h, f"Вчера взяли в плен солдата номер {m}.")
                for c, m, h in phrase
                if c == channel
            ],
            "catchup",
        )
    # newer than all of them: the same words, not as the phrase
    words_only = [
        at(100, 1000 + i, 24 + i, f"Плен далёк, в городе {i} взяли мост.") for i in range(230)
    ]
    for i in range(0, len(words_only), 100):
        await pipeline.ingest(words_only[i : i + 100], "catchup")
    await archive.mark_deleted(database, 100, [3])
    try:
        assert await ids(database, '"взяли в плен"') == [(200, 2), (100, 2), (200, 1), (100, 1)]
        assert await ids(database, '"взяли в плен"', limit=2) == [(200, 2), (100, 2)]
        assert await ids(database, '"взяли в плен"', filters=Filters(channels=(200,))) == [
            (200, 2),
            (200, 1),
        ]
        every = await ids(database, '"взяли в плен"', filters=Filters(include_deleted=True))
        assert every == [(200, 2), (100, 3), (100, 2), (200, 1), (100, 1)]
        hours = Filters(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2))
        assert await ids(database, '"взяли в плен"', filters=hours) == [(100, 2), (200, 1)]
        assert await ids(database, '"взяли в плен" -солдата') == []
        assert len(await ids(database, "взяли плен", limit=300)) == 234
    finally:
        await database.close()


async def test_a_phrase_kept_by_some_candidates_is_read_in_rounds_sized_by_them(
    archive_target: Path | str,
) -> None:
    """Every third candidate holds the phrase (as typed or inflected), the others only
    its words: later rounds ask for what the first round's share says is missing, and
    every hit is found, in order, on both backends."""
    database = await open_database(archive_target)
    await archive.save_channel(database, Channel(100, 1, "frontnews", "Front news"))
    texts = {
        0: "Вчера взяли в плен солдата номер {i}.",
        1: "Плен далёк, в городе {i} взяли мост.",
        2: "В городе {i} взяли мост. Плен далёк.",
    }
    posts = [
        Post(
            channel_id=100,
            msg_id=i + 1,
            date=T0 + timedelta(minutes=i),
            text=("Солдата {i} взяли вчера в плен." if i % 6 == 3 else texts[i % 3]).format(i=i),
            raw={"id": i + 1},
        )
        for i in range(120)
    ]
    await Pipeline(database).ingest(posts, "catchup")
    expected = [(100, i + 1) for i in reversed(range(120)) if i % 3 == 0]
    try:
        for limit in (1, 5, 12, 39, 40, 50):
            assert await ids(database, '"взяли в плен"', limit=limit) == expected[:limit]
        if database.dialect == "postgresql":
            # Statistics say `в` and `взять` are in every post: the candidates are
            # looked up without them, and the same posts are found.
            await database.execute("ANALYZE posts_fts")
            database.common_lexemes = None  # read before there were statistics
            from storage.search import _common_lexemes

            assert {"в", "взять"} <= await _common_lexemes(database)
            for limit in (1, 5, 12, 39, 40, 50):
                assert await ids(database, '"взяли в плен"', limit=limit) == expected[:limit]
    finally:
        await database.close()


def test_candidates_are_looked_up_without_words_most_posts_hold() -> None:
    from storage.search import _without_common

    common = frozenset({"в", "и"})
    assert (
        _without_common("(('в' | 'в') & ('том' | 'том') & ('числе' | 'число'))", common)
        == "(('том' | 'том') & ('числе' | 'число'))"
    )
    nested = "((('в' | 'в') & ('том' | 'том')) & ('москва' | ('москва' & 'и') | 'в'))"
    assert _without_common(nested, common) == "(('том' | 'том') & ('москва' | 'москва' | 'в'))"
    # never everything, never part of an alternative, never a prefix
    assert _without_common("('в' & 'и')", common) == "('в' & 'и')"
    assert _without_common("(('в' | 'x') & 'y')", common) == "(('в' | 'x') & 'y')"
    assert _without_common("('в' & 'в':*)", common) == "'в':*"
    assert _without_common("('в' & 'y')", frozenset()) == "('в' & 'y')"


def test_rounds_of_candidates_follow_the_share_kept() -> None:
    from storage.search import _CANDIDATES_MAX, _CANDIDATES_MIN, _first_round, _next_round

    assert _first_round(50) == 66
    assert _next_round(66, 66, 0, 50) == 132  # none kept yet: twice as many
    assert _next_round(66, 66, 45, 5) == _CANDIDATES_MIN  # a few missing: a few more
    assert _next_round(66, 66, 20, 30) == 128  # 30 more at 20 in 66, and a quarter
    assert _next_round(6_400, 50_000, 1, 49) == _CANDIDATES_MAX


async def test_a_form_the_archive_did_not_hold_is_found_once_a_post_has_it(
    db: Database,
) -> None:
    from bot.query import prepare

    assert await ids(db, "Белгород") == [(200, 2), (200, 1)]
    assert "белгородец" not in (await prepare(db, "Белгород")).fts
    await Pipeline(db).ingest([_post(100, 9, 6, "Белгородец рассказал об обстреле.")], "catchup")
    assert "белгородец" in (await prepare(db, "Белгород")).fts
    assert await ids(db, "Белгород") == [(100, 9), (200, 2), (200, 1)]


# A phrase found as typed is accepted without analysing the text; these are the
# texts where a literal reading could go wrong, and real posts holding the phrases.
LITERAL_EDGES = [
    "В том числе дети.",
    "в  том   числе",
    "ранены, в том числе двое",
    "(в том числе)",
    "«в том числе»",
    '"в том числе"',
    "В ТОМ ЧИСЛЕ",
    "в том\nчисле",  # a line break ends the sentence
    "в том. Числе",  # so does a full stop
    "в том.числе",
    "в тoм числе",  # a Latin "o": a look-alike, folded by the analysis only
    "в то́м числе",  # a stress mark
    "в том чис\u00adле",  # a soft hyphen
    "п'в том числе",
    "по-в том числе",
    "https://example.com/в том числе",
    "https://example.com/“в том числе",
    "в том числе.рф",
    "в том числе's",
    "в том числе2",
    "в том ччисле",
    "во том числе",
    "в тем числе",
    "в том числе…",
    "в том числе!",
    "взяли в плен",
    "взяли их в плен",
    "Взяли в плен. Взяли в плен",
    "взяли в плену",
    "visit www. in the www",
    "in the www. now",
    "Всё в том же духе",
    "все в том же духе",
    "В том числе дети, взятые в плен в Белгороде",
    "Дети в том числе. Взяли в плен у Работино",
    "В районе Работино взяли в плен двух военнослужащих.",
    "в том числе детей",
    "в том числе дети-сироты",
    "в том числе Белгород-Днестровский и Белгород, взяли в плен",
    "Белгородская область: взяли в плен",
]
LITERAL_QUERIES = [
    '"в том числе"',
    '"взяли в плен"',
    '"в том числе" "взяли в плен"',
    '"in the www"',
    '"всё в том"',
    '"в том числе" дети',
    '"в том числе" "дети"',
    '"в том числе" -дети',
    '"взяли в плен" Работино',
    '"взяли в плен" Белгород',
]


def test_a_phrase_found_as_typed_matches_as_the_analysis_says() -> None:
    from bot.detection import analyze
    from bot.detection.query import QueryMatcher, parse_query
    from tests.incident_helpers import unrelated_posts

    real = [
        row["text"]
        for row in unrelated_posts(3000, stride=7)
        if "в том числе" in row["text"].lower() or "в плен" in row["text"].lower()
    ]
    assert len(real) > 20
    for query in LITERAL_QUERIES:
        check = compile_query(query).check
        assert check is not None
        matcher = QueryMatcher(parse_query(query))
        for text in [*LITERAL_EDGES, *real]:
            assert check(text) == matcher.matches(analyze(text)), (query, text)


def test_only_queries_of_plain_phrases_are_accepted_as_typed() -> None:
    from bot.query import _literal, _parse

    assert _literal(_parse('"в том числе"')) is not None
    assert _literal(_parse('"в том числе" "взяли в плен"')) is not None
    assert _literal(_parse('"в том числе" дети')) is not None
    for query in ['"в том числе" -дети', '"в том числе" OR "в плен"', '"в том числе" пле*']:
        assert _literal(_parse(query)) is None, query
    for query in ['"в 2024 году"', '"in the www"', '"тóм числе"']:
        assert _literal(_parse(query)) is None, query
