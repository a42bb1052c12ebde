"""The README's two commands are exactly what CI runs, and they are what a new user reads."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands_literally() -> None:
    result = subprocess.run(
        [str(ROOT / ".ci/run"), "--print-commands"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    setup, tests = result.stdout.splitlines()
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert setup in readme and tests in readme, (
        "each command is one README line, copied, not paraphrased"
    )
    assert setup.startswith("sudo apt-get install -y ") and "pip install -e '.[all]'" in setup
    assert tests == ".venv/bin/python -m pytest"
