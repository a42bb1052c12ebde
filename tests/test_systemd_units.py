"""The systemd units are hardened: `systemd-analyze security` exposure at most 2.5."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_EXPOSURE = 2.5


@pytest.mark.skipif(
    not shutil.which("systemd-analyze"),
    reason="systemd-analyze is not installed (apt-get install systemd)",
)
@pytest.mark.parametrize("unit", ["toyd.service", "toyd-cloud.service"])
def test_unit_exposure_is_at_most_2_5(unit: str) -> None:
    result = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            "--no-pager",
            str(ROOT / "systemd" / unit),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_cloud_may_open_more_files_than_the_gateway_has_sessions() -> None:
    unit = (ROOT / "systemd" / "toyd-cloud.service").read_text()
    limit = int(re.search(r"^LimitNOFILE=(\d+)$", unit, re.M).group(1))
    from toyd_plugins.gateway.settings import GatewaySettings

    assert limit >= 2 * GatewaySettings().max_sessions
