"""An aarch64 wheelhouse for toyd's device role, made on the build host without emulation.

The requirement list is read from pyproject.toml (core dependencies + the ``device`` extra), so
new device plugins' dependencies land in the image without touching the build. Each requirement
is fetched as an aarch64 manylinux wheel for CPython 3.11 (Debian bookworm's Python); a pure-Python
sdist is built into a wheel on the host; requirements without either are mapped by build.yaml to a
Debian package or a substitute, or the build stops naming the package.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from .config import BuildConfig, ImageBuildError, _normalize

log = logging.getLogger(__name__)
PYTHON_VERSION = "3.11"  # Debian bookworm
# glibc 2.36 in bookworm: every manylinux level up to 2_36 runs there.
PLATFORMS = (
    ["manylinux2014_aarch64"]
    + [f"manylinux_2_{n}_aarch64" for n in range(17, 37)]
    + ["linux_aarch64"]
)
TARGET_ENV = {
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "python_version": PYTHON_VERSION,
    "python_full_version": f"{PYTHON_VERSION}.2",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "device",
}
PIP_TIMEOUT_S = 900
SOURCE_SKIP = (
    ".git",
    ".venv",
    "image",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    "tests",
    "bench",
)


def device_requirements(pyproject: Path) -> list[Requirement]:
    """Core dependencies plus the device extra whose markers hold on aarch64 / Python 3.11."""
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ImageBuildError(f"cannot read the dependency list from {pyproject}: {exc}") from None
    reqs = [Requirement(r) for r in project.get("dependencies", [])]
    reqs += [Requirement(r) for r in project.get("optional-dependencies", {}).get("device", [])]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(TARGET_ENV)]


def plan(
    config: BuildConfig, reqs: list[Requirement]
) -> tuple[list[str], list[str], dict[str, str]]:
    """Split requirements into (pip requirement strings, Debian packages, notes per name)."""
    pip_reqs: list[str] = []
    debian: list[str] = []
    notes: dict[str, str] = {}
    for req in reqs:
        name = _normalize(req.name)
        if name in config.debian_python:
            debian.append(config.debian_python[name])
            notes[req.name] = f"Debian package {config.debian_python[name]}"
        elif name in config.substitutes:
            pip_reqs.append(config.substitutes[name])
            notes[req.name] = f"substituted by {config.substitutes[name]} (no aarch64 wheel)"
        else:
            req.marker = None
            pip_reqs.append(str(req))
    return pip_reqs, debian, notes


def pip_download_cmd(dest: Path, reqs: list[str], local: Path) -> list[str]:
    """pip download for aarch64/cp311 binary wheels only, into dest; local holds host-built wheels."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--dest",
        str(dest),
        "--find-links",
        str(dest),
        "--find-links",
        str(local),
        "--only-binary=:all:",
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--abi",
        "cp311",
        "--abi",
        "abi3",
        "--abi",
        "none",
    ]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    return cmd + reqs


def build_wheelhouse(config: BuildConfig, repo: Path, dest: Path, local: Path) -> dict[str, str]:
    """Fill dest with toyd's wheel and every aarch64 wheel it needs; returns notes for the report.

    Pure-Python wheels built from sdists are kept in ``local`` (a cache) for the next build.
    """
    dest.mkdir(parents=True, exist_ok=True)
    local.mkdir(parents=True, exist_ok=True)
    pip_reqs, _, notes = plan(config, device_requirements(repo / "pyproject.toml"))
    # Build from a copy: setuptools builds in-tree (build/, *.egg-info), which two builds from
    # one checkout at the same time would share.
    src = dest.parent / "toyd-src"
    shutil.copytree(repo, src, ignore=shutil.ignore_patterns(*SOURCE_SKIP))
    try:
        _run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest), str(src)],
            "build toyd's wheel",
        )
    finally:
        shutil.rmtree(src, ignore_errors=True)
    built: set[str] = set()
    for _ in range(len(pip_reqs) + 1):
        proc = subprocess.run(
            pip_download_cmd(dest, pip_reqs, local),
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
        )
        if proc.returncode == 0:
            for wheel in dest.glob("*.whl"):
                if (local / wheel.name).exists():
                    notes.setdefault(
                        wheel.name.split("-")[0],
                        "pure-Python wheel built on the host from its sdist",
                    )
            return notes
        match = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-]+)", proc.stderr)
        if not match:
            raise ImageBuildError(f"pip download for aarch64 failed:\n{_tail(proc.stderr)}")
        name = match.group(1)
        if name in built:
            raise ImageBuildError(
                f"{name}: built a wheel on the host but pip still cannot use it:\n{_tail(proc.stderr)}"
            )
        _build_pure_wheel(name, local)
        built.add(name)
    raise ImageBuildError("pip download did not converge")


def _build_pure_wheel(name: str, dest: Path) -> None:
    """A requirement without an aarch64 wheel may still be pure Python: build it on the host."""
    before = set(dest.glob("*.whl"))
    hint = (
        f"{name} has no aarch64 wheel for CPython {PYTHON_VERSION} on PyPI and no pure-Python sdist; "
        f"map it in build.yaml: python.debian ({name}: python3-...) or python.substitute"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-binary",
            name,
            "--wheel-dir",
            str(dest),
            name,
        ],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
    )
    new = set(dest.glob("*.whl")) - before
    if proc.returncode != 0 or not new:
        raise ImageBuildError(f"{hint}\n{_tail(proc.stderr)}")
    for wheel in new:
        if not wheel.name.endswith("-none-any.whl"):
            wheel.unlink()
            raise ImageBuildError(
                f"{hint} (its sdist builds {wheel.name}, which is not pure Python)"
            )


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if proc.returncode != 0:
        raise ImageBuildError(f"cannot {what}:\n{_tail(proc.stderr or proc.stdout)}")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
