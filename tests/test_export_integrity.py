"""verify-export cross-checks each record's plain fields against its raw, and checks an
optional Ed25519 signature on the manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot import cli
from storage import export
from tests.test_export import _keep_test_logging, _run, db_file  # noqa: F401


def _rewrite_manifest(out: Path) -> None:
    """Recompute the manifest's hash and size, as someone editing the export would."""
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    data = out.read_bytes()
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    manifest["bytes"] = len(data)
    manifest_path.write_text(json.dumps(manifest))


def _edit_jsonl(out: Path, field: str, value: object) -> None:
    lines = out.read_text().splitlines()
    record = json.loads(lines[0])
    record[field] = value
    lines[0] = json.dumps(record, ensure_ascii=False)
    out.write_text("\n".join(lines) + "\n")


def _export(db_file: Path, out: Path, fmt: str = "jsonl", *extra: str) -> None:  # noqa: F811
    assert _run(db_file, "export", "--format", fmt, "-o", str(out), "--manifest", *extra) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", "Взяли в плен десять военных"),
        ("msg_id", 99),
    ],
)
def test_an_edited_field_fails_even_with_a_recomputed_manifest(
    db_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys,
    field: str,
    value: object,
) -> None:
    out = tmp_path / "posts.jsonl"
    _export(db_file, out)
    assert cli.main(["verify-export", str(out)]) == 0
    assert "does not prove who made it" in capsys.readouterr().out
    _edit_jsonl(out, field, value)
    _rewrite_manifest(out)
    assert cli.main(["verify-export", str(out)]) == 1
    report = capsys.readouterr().out
    assert "1 records whose fields differ from their raw: 100/" in report
    assert f"({field})" in report


def test_telethon_and_desktop_raw_records_are_read_field_by_field() -> None:
    telethon = {
        "_": "Message",
        "id": 7,
        "peer_id": {"_": "PeerChannel", "channel_id": 100},
        "date": "2024-05-01T09:00:00+00:00",
        "message": "Сводка",
    }
    record = {"channel_id": 100, "msg_id": 7, "date": "2024-05-01T09:00:00+00:00"}
    assert export.raw_disagreement({**record, "text": "Сводка"}, telethon) is None
    assert export.raw_disagreement({**record, "text": "Другое"}, telethon) == "text"
    moved = {**record, "text": "Сводка", "date": "2024-05-01T10:00:00+00:00"}
    assert export.raw_disagreement(moved, telethon) == "date"
    assert export.raw_disagreement({**record, "text": "Сводка", "channel_id": 5}, telethon)
    desktop = {
        "id": 7,
        "type": "message",
        "date": "2024-05-01T12:00:00",
        "date_unixtime": "1714554000",
        "text": ["Обстрел ", {"type": "bold", "text": "Шебекино"}],
    }
    plain = {**record, "text": "Обстрел Шебекино"}
    assert export.raw_disagreement(plain, desktop) is None
    assert export.raw_disagreement({**plain, "text": "Обстрел"}, desktop) == "text"
    salvaged = {"_": "Message", "conversion_error": "TypeError: x"}
    assert export.raw_disagreement(plain, salvaged) is None  # nothing to compare


def test_csv_exports_are_cross_checked_too(
    db_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys,
) -> None:
    out = tmp_path / "posts.csv"
    _export(db_file, out, "csv")
    assert cli.main(["verify-export", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    rows[0]["text"] = "подделка"
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    out.write_text(buffer.getvalue(), newline="")
    _rewrite_manifest(out)
    capsys.readouterr()
    assert cli.main(["verify-export", str(out)]) == 1
    assert "(text)" in capsys.readouterr().out


def _keys(folder: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private = folder / "key.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(private, 0o600)
    public = folder / "key.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_a_signed_manifest_verifies_with_the_key_and_not_after_an_edit(
    db_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys,
) -> None:
    private, public = _keys(tmp_path)
    out = tmp_path / "signed.jsonl"
    _export(db_file, out, "jsonl", "--sign", str(private))
    assert "signed by SHA256:" in capsys.readouterr().err
    assert cli.main(["verify-export", str(out), "--key", str(public)]) == 0
    assert "signed by the key SHA256:" in capsys.readouterr().out
    assert cli.main(["verify-export", str(out)]) == 0  # without --key: said, not checked
    assert "pass --key" in capsys.readouterr().out
    (tmp_path / "other").mkdir()
    _, other = _keys(tmp_path / "other")
    assert cli.main(["verify-export", str(out), "--key", str(other)]) == 1
    assert "does not verify" in capsys.readouterr().out
    # a manifest edited after signing no longer verifies
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["filters"] = {"query": "something else"}
    manifest_path.write_text(json.dumps(manifest))
    assert cli.main(["verify-export", str(out), "--key", str(public)]) == 1
    assert "does not verify" in capsys.readouterr().out


def test_signing_needs_a_private_key_file_and_unsigned_fails_with_key(
    db_file: Path,  # noqa: F811
    tmp_path: Path,
    capsys,
) -> None:
    private, public = _keys(tmp_path)
    os.chmod(private, 0o644)
    out = tmp_path / "x.jsonl"
    assert _run(db_file, "export", "-o", str(out), "--manifest", "--sign", str(private)) == 2
    assert "readable by others" in capsys.readouterr().err and not out.exists()
    assert _run(db_file, "export", "-o", str(out), "--sign", str(private)) == 2
    assert "add --manifest" in capsys.readouterr().err
    _export(db_file, out)
    assert cli.main(["verify-export", str(out), "--key", str(public)]) == 1
    assert "not signed" in capsys.readouterr().out


async def test_an_imported_desktop_export_verifies_field_by_field(tmp_path: Path) -> None:
    from storage.db import open_database
    from tests.test_import import _import, desktop_export

    db = await open_database(tmp_path / "archive.db")
    await _import(db, desktop_export(tmp_path / "export").parent)
    out = tmp_path / "imported.jsonl"
    result = await export.export_to_file(db, export.Selection(), "jsonl", out, manifest=True)
    await db.close()
    assert result.rows >= 3
    verified = export.verify_export(out)
    assert verified.ok, verified.problems


async def test_posts_received_through_telethon_verify_field_by_field(sim, tmp_path: Path) -> None:
    from storage import archive
    from tests.watch_helpers import eventually, running, settings_for

    user = sim.add_user(phone="+15550009", first_name="Monitor")
    rdk = sim.add_channel(username="rdk_channel", title="РДК")
    sim.post(rdk, "архивный пост")
    async with running(sim, user, settings_for(tmp_path, "rdk_channel")) as app:
        live = sim.post(rdk, "Бойцы РДК взяли в плен двоих")
        sim.edit(rdk, live, "Бойцы РДК взяли в плен троих")

        async def edited() -> bool:
            row = await archive.get_post(app.db, rdk.id, live)
            return row is not None and row["text"].endswith("троих")

        await eventually(app, edited)
        out = tmp_path / "live.jsonl"
        result = await export.export_to_file(
            app.db, export.Selection(), "jsonl", out, manifest=True
        )
    assert result.rows == 2
    raws = [json.loads(json.loads(line)["raw"]) for line in out.read_text().splitlines()]
    assert all(r.get("_") == "Message" and "peer_id" in r for r in raws)  # Telethon's shape
    verified = export.verify_export(out)
    assert verified.ok, verified.problems
