"""`chanwatch incidents`, `chanwatch incident N` and `chanwatch export --incident N`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import parser as cli
from tests.incident_helpers import story_archive

START = datetime(2023, 6, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "setup_logging", lambda *args, **kwargs: None)


@pytest.fixture
def archive_path(archive_target: Path | str) -> tuple[Path | str, dict[str, list[int]]]:
    path = archive_target
    ids = asyncio.run(story_archive(path, START, unrelated=120))
    return path, ids


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["--env-file", "/nonexistent", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_incidents_list_in_every_format(archive_path, capsys) -> None:
    path, ids = archive_path
    code, out, _ = run(capsys, "incidents", "--db", str(path), "--format", "json")
    assert code == 0
    found = json.loads(out)
    story = next(i for i in found if i["title"] == "Новая Таволжанка, 2023-06-02")
    assert story["posts"] == sum(len(v) for k, v in ids.items() if k != "unrelated_claim")
    assert story["channels"] == 5 and story["counts"] == [2, 5]
    assert any(i["title"].startswith("Работино") for i in found)
    code, out, _ = run(capsys, "incidents", "--db", str(path))
    assert code == 0 and "#1" in out and "5 channels" in out
    assert any(ch in out for ch in "▁▂▃▄▅▆▇█")  # the sparkline
    code, out, _ = run(capsys, "incidents", "--db", str(path), "--format", "csv")
    table = list(csv.reader(io.StringIO(out)))
    assert table[0][:2] == ["id", "title"] and len(table) == len(found) + 1
    # filters: the governor's channel is only in the story; --since after everything
    code, out, _ = run(
        capsys, "incidents", "--db", str(path), "--channel", "vvgladkov", "--format", "json"
    )
    assert [i["title"] for i in json.loads(out)] == ["Новая Таволжанка, 2023-06-02"]
    code, out, _ = run(capsys, "incidents", "--db", str(path), "--since", "2030-01-01")
    assert code == 0 and "no incidents" in out
    code, _, err = run(capsys, "incidents", "--db", str(path), "--channel", "nobody")
    assert code == 2 and "no such channel" in err


def test_incident_timeline_says_why_each_post_joined(archive_path, capsys) -> None:
    path, _ = archive_path
    code, out, _ = run(capsys, "incident", "1", "--db", str(path))
    assert code == 0
    assert out.startswith("incident #1 · Новая Таволжанка, 2023-06-02")
    assert "opened the incident" in out
    assert "forward a forward of the same post" in out
    assert "mention the incident names this channel (гладков)" in out
    assert "https://t.me/vvgladkov/" in out
    code, out, _ = run(capsys, "incident", "1", "--db", str(path), "--format", "json")
    timeline = json.loads(out)["timeline"]
    assert [m["label"] for m in timeline][:2] == ["claim", "claim"]
    code, _, err = run(capsys, "incident", "999", "--db", str(path))
    assert code == 2 and "no incident 999" in err


def test_export_of_an_incident_keeps_the_evidence_guarantees(archive_path, capsys, tmp_path):
    path, ids = archive_path
    target = tmp_path / "incident1.jsonl"
    code, _, err = run(
        capsys, "export", "--incident", "1", "--db", str(path), "-o", str(target), "--manifest"
    )
    assert code == 0, err
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    expected = {i for k, v in ids.items() if k != "unrelated_claim" for i in v}
    assert {r["id"] for r in records} == expected
    assert all(len(r["raw_sha256"]) == 64 for r in records)
    manifest = json.loads((tmp_path / "incident1.jsonl.manifest.json").read_text())
    assert manifest["rows"] == len(expected) and manifest["filters"]["incident"] == 1
    code, out, _ = run(capsys, "verify-export", str(target))
    assert code == 0 and out.startswith("OK")
    code, _, err = run(capsys, "export", "--incident", "42", "--db", str(path))
    assert code == 2 and "no such incident" in err
