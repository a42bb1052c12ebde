"""SD image build config: the shipped one is valid, and bad input stops the build early with
an error that names the key, the file and the line (no slow build here)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from image_support import (  # image/ on sys.path
    IMAGE,
    needs_root,
    run_build,
    small_disk,
    write_config,
)

# isort: split
from toyd_image import config, models
from toyd_image.config import ImageBuildError

_build_spec = importlib.util.spec_from_file_location("toyd_image_build", IMAGE / "build.py")
_build = importlib.util.module_from_spec(_build_spec)
_build_spec.loader.exec_module(_build)
MISSING_BUILD_PACKAGES = sorted(
    {pkg for tool, pkg in _build.TOOLS.items() if shutil.which(tool) is None}
)
needs_build_tools = pytest.mark.skipif(  # the README's set-up does not install the image tools
    bool(MISSING_BUILD_PACKAGES),
    reason=f"the image build needs: apt-get install {' '.join(MISSING_BUILD_PACKAGES)}",
)


# --- build config -----------------------------------------------------------------------------


def test_shipped_build_config_is_valid() -> None:
    cfg = config.load(IMAGE / "build.yaml")
    assert cfg.variant == "release"
    assert "python3-pyaudio" in cfg.package_list()
    assert cfg.debian_python == {"pyaudio": "python3-pyaudio"}
    assert [m.dest for m in cfg.models][-1] == "vosk"
    models.check_sources(cfg.models)  # the shipped models exist on this machine


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"variant": "fancy"}, "variant: 'fancy' is not one of"),
        ({"boot_size_mb": 8}, "boot_size_mb: must be a whole number"),
        (
            {"packages": "/nonexistent/packages.txt"},
            "packages: file /nonexistent/packages.txt does not exist",
        ),
        ({"models": [{"source": "x.tflite"}]}, "models[0]: needs source and dest"),
        ({"models": [{"source": "x", "dest": "../../etc/passwd"}]}, "must be relative"),
        (
            {"python": {"debian": {"pyaudio": "python3-not-listed"}}},
            "python3-not-listed not in packages.txt",
        ),
    ],
)
def test_bad_build_config_names_the_key(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ImageBuildError, match=None) as info:
        config.load(write_config(tmp_path, **change))
    assert message in str(info.value)
    assert str(tmp_path / "build.yaml") in str(info.value)


def test_yaml_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "build.yaml"
    path.write_text("name: toyd\nvariant: [test\n")
    with pytest.raises(ImageBuildError, match=r"build.yaml, line 3"):
        config.load(path)


@pytest.mark.parametrize("kind", ["missing", "directory", "binary"])
def test_unreadable_build_config(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "build.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ImageBuildError, match="cannot read build config"):
        config.load(path)


def test_build_stops_early_on_missing_model(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path, models=[{"source": str(tmp_path / "nope.tflite"), "dest": "wakeword/x.tflite"}]
    )
    out = tmp_path / "out"
    proc = run_build("--config", str(cfg), "--out", str(out), "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 1
    assert "model 'wakeword/x.tflite'" in proc.stderr and "does not exist" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_build_stops_early_on_unreadable_config(tmp_path: Path) -> None:
    proc = run_build("--config", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert "cannot read build config" in proc.stderr and "Traceback" not in proc.stderr


@needs_root
@needs_build_tools
def test_build_stops_early_without_space(tmp_path: Path) -> None:
    with small_disk(tmp_path, 16) as small:
        proc = run_build(
            "--config",
            str(write_config(tmp_path)),
            "--out",
            str(small / "out"),
            "--cache",
            str(tmp_path / "cache"),
        )
        assert proc.returncode == 1
        assert f"not enough space: {small / 'out'} has" in proc.stderr
        assert list(small.iterdir()) == []


def test_build_help_teaches() -> None:
    proc = run_build("--help")
    assert proc.returncode == 0
    assert "--variant" in proc.stdout and "docs/image.md" in proc.stdout
    assert "--bundle-compression {lz4,xz}" in proc.stdout
