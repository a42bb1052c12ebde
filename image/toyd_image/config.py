"""The image build configuration (image/build.yaml): load, validate strictly, explain errors."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toyd.errors import ToydError

VARIANTS = {"release": (), "test": ("test",), "broken": ("test", "broken")}
KEYS = {
    "name",
    "variant",
    "suite",
    "mirror",
    "security_mirror",
    "packages",
    "hooks",
    "toyd_config",
    "boot_size_mb",
    "root_free_mb",
    "python",
    "models",
    "signing_cert",
    "signing_key",
}
IMAGE_DIR = Path(__file__).resolve().parent.parent


class ImageBuildError(ToydError):
    """The image cannot be built; the message says what to fix."""


@dataclass(frozen=True)
class Model:
    """One model to copy into /opt/toyd/models/<dest>."""

    source: str
    dest: str
    sha256: str | None = None


@dataclass(frozen=True)
class BuildConfig:
    """Validated build settings; paths are absolute."""

    path: Path
    name: str = "toyd-pi"
    variant: str = "release"
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    security_mirror: str = "http://deb.debian.org/debian-security"
    packages: Path = IMAGE_DIR / "packages.txt"
    hooks: Path = IMAGE_DIR / "hooks"
    toyd_config: Path = IMAGE_DIR.parent / "config" / "toyd.yaml"
    boot_size_mb: int = 256
    root_free_mb: int = 256
    debian_python: dict[str, str] = field(default_factory=dict)
    substitutes: dict[str, str] = field(default_factory=dict)
    models: tuple[Model, ...] = ()
    signing_cert: Path | None = None  # update bundles' signer; None: the cache's development key
    signing_key: Path | None = None

    @property
    def overlays(self) -> list[Path]:
        """Overlay folders (each with rootfs/ and boot/) applied in order for this variant."""
        return [IMAGE_DIR / "overlay"] + [
            IMAGE_DIR / "variants" / v for v in VARIANTS[self.variant]
        ]

    def package_list(self) -> list[str]:
        """Debian packages from the package list file (comments and blank lines dropped)."""
        lines = (line.split("#", 1)[0].strip() for line in self.packages.read_text().splitlines())
        return [line for line in lines if line]


def _fail(path: Path, key: str, message: str) -> ImageBuildError:
    return ImageBuildError(f"{path}: {key}: {message}")


def load(path: str | Path, **overrides: Any) -> BuildConfig:
    """Read and validate a build config; raise ImageBuildError naming the file and key."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImageBuildError(f"cannot read build config {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ImageBuildError(
            f"cannot read build config {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise ImageBuildError(f"{path}, line {line}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ImageBuildError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ImageBuildError(f"{path}: expected 'key: value' lines at the top level")
    data.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise _fail(path, unknown[0], f"unknown key; known keys: {', '.join(sorted(KEYS))}")
    base = path.parent
    values: dict[str, Any] = {}
    for key in ("name", "suite", "mirror", "security_mirror"):
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise _fail(path, key, "must be a non-empty text")
            values[key] = data[key]
    if "name" in values and not re.fullmatch(r"[A-Za-z0-9._-]+", values["name"]):
        raise _fail(path, "name", "letters, digits, . _ - only (it names the output file)")
    variant = data.get("variant", "release")
    if variant not in VARIANTS:
        raise _fail(path, "variant", f"{variant!r} is not one of {', '.join(VARIANTS)}")
    values["variant"] = variant
    for key, kind in (("packages", "file"), ("hooks", "dir"), ("toyd_config", "file")):
        if key in data:
            values[key] = _existing(path, key, base / str(data[key]), kind)
    for key in ("signing_cert", "signing_key"):
        if key in data:
            values[key] = _existing(path, key, base / str(data[key]), "file")
    if ("signing_cert" in values) != ("signing_key" in values):
        raise _fail(path, "signing_cert", "signing_cert and signing_key must be set together")
    for key, low in (("boot_size_mb", 64), ("root_free_mb", 64)):
        if key in data:
            if (
                not isinstance(data[key], int)
                or isinstance(data[key], bool)
                or not low <= data[key] <= 65536
            ):
                raise _fail(path, key, f"must be a whole number of MiB, {low}..65536")
            values[key] = data[key]
    python = data.get("python") or {}
    if not isinstance(python, dict) or set(python) - {"debian", "substitute"}:
        raise _fail(path, "python", "may hold 'debian' and 'substitute' mappings only")
    for key, attr in (("debian", "debian_python"), ("substitute", "substitutes")):
        mapping = python.get(key) or {}
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            raise _fail(path, f"python.{key}", "must map pip names to text")
        values[attr] = {_normalize(k): v for k, v in mapping.items()}
    values["models"] = tuple(_models(path, data.get("models") or []))
    config = BuildConfig(path=path, **values)
    missing = sorted(set(config.debian_python.values()) - set(config.package_list()))
    if missing:
        raise _fail(
            path,
            "python.debian",
            f"{', '.join(missing)} not in {config.packages.name}; add it there",
        )
    return config


def _existing(path: Path, key: str, target: Path, kind: str) -> Path:
    ok = target.is_file() if kind == "file" else target.is_dir()
    if not ok:
        raise _fail(path, key, f"{kind} {target} does not exist")
    if not os.access(target, os.R_OK):
        raise _fail(path, key, f"{target} is not readable")
    return target.resolve()


def _models(path: Path, items: Any) -> list[Model]:
    if not isinstance(items, list):
        raise _fail(path, "models", "must be a list of {source, dest}")
    out: list[Model] = []
    for i, item in enumerate(items):
        where = f"models[{i}]"
        if (
            not isinstance(item, dict)
            or set(item) - {"source", "dest", "sha256"}
            or "source" not in item
            or "dest" not in item
        ):
            raise _fail(path, where, "needs source and dest (and optional sha256)")
        dest = str(item["dest"])
        if dest.startswith("/") or ".." in Path(dest).parts:
            raise _fail(
                path, f"{where}.dest", f"{dest!r} must be relative, inside /opt/toyd/models"
            )
        sha = item.get("sha256")
        if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
            raise _fail(path, f"{where}.sha256", "must be 64 lowercase hex digits")
        source = str(item["source"])
        if (
            "://" not in source
            and not source.startswith("package:")
            and not Path(source).is_absolute()
        ):
            source = str((path.parent / source).resolve())
        out.append(Model(source=source, dest=dest, sha256=sha))
    return out


def _normalize(name: str) -> str:
    """PEP 503 normalized project name, so 'PyAudio' and 'pyaudio' match."""
    return re.sub(r"[-_.]+", "-", name).lower()
