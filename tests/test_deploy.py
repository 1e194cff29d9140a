"""The systemd unit is valid and keeps its hardening."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "deploy" / "chanwatch.service"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if match:
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


def test_unit_is_notify_with_watchdog_restart_and_hardening() -> None:
    unit = directives(UNIT.read_text())
    assert unit["Type"] == ["notify"] and unit["WatchdogSec"]
    assert unit["Restart"] == ["on-failure"] and unit["StartLimitBurst"]
    assert unit["User"] == ["chanwatch"] and unit["EnvironmentFile"]
    assert unit["StateDirectory"] == ["chanwatch"]
    assert unit["ReadWritePaths"] == ["/var/lib/chanwatch"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit[key] == [value], key
    assert "AF_INET" in unit["RestrictAddressFamilies"][0]
    assert "AF_UNIX" in unit["RestrictAddressFamilies"][0]  # sd_notify needs it


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart exists; point it at this Python for the check
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", UNIT.read_text(), flags=re.M)
    copy = tmp_path / "chanwatch.service"
    copy.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "chanwatch.service" not in done.stderr, done.stderr


TEMPLATE = UNIT.with_name("chanwatch@.service")


def test_template_unit_is_the_same_service_per_account() -> None:
    unit, template = directives(UNIT.read_text()), directives(TEMPLATE.read_text())
    assert template["EnvironmentFile"] == ["/etc/chanwatch/%i.env"]
    assert template["Environment"] == ["CHANWATCH_WATCHER=%i"]
    assert template["StateDirectory"] == ["chanwatch/%i"]
    assert template["ReadWritePaths"] == ["/var/lib/chanwatch/%i"]
    assert "--env-file /etc/chanwatch/%i.env run" in template["ExecStart"][0]
    different = {"Description", "WorkingDirectory", "EnvironmentFile", "ExecStart"}
    different |= {"StateDirectory", "ReadWritePaths", "Environment"}
    for key, values in unit.items():  # every hardening line is kept
        if key not in different:
            assert template.get(key) == values, key


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)
def test_systemd_analyze_verify_template_instance(tmp_path: Path) -> None:
    text = re.sub(
        r"^ExecStart=\S+", f"ExecStart={sys.executable}", TEMPLATE.read_text(), flags=re.M
    )
    copy = tmp_path / "chanwatch@.service"
    copy.write_text(text)
    instance = tmp_path / "chanwatch@a.service"
    instance.symlink_to(copy)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(instance)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
