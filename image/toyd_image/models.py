"""Fetch the model files named in the build config (paths, URLs, files inside Python packages)."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from .config import ImageBuildError, Model

log = logging.getLogger(__name__)
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar.xz", ".tar")
DOWNLOAD_TIMEOUT_S = 60


def resolve_local(source: str) -> Path | None:
    """The local path a source names (plain path, package:), or None for a URL to download."""
    if source.startswith("package:"):
        module, _, rel = source.removeprefix("package:").partition("/")
        spec = importlib.util.find_spec(module) if module else None
        if spec is None or not spec.submodule_search_locations:
            raise ImageBuildError(
                f"model source {source!r}: Python package {module!r} is not installed on this machine"
            )
        return Path(list(spec.submodule_search_locations)[0]) / rel
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("http", "https", "file"):
        return None
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ImageBuildError(
            f"model source {source!r}: unsupported URL scheme {parsed.scheme!r} (use https, file or a path)"
        )
    return Path(source)


def check_sources(models: tuple[Model, ...]) -> None:
    """Fail before any slow step if a local model source is missing."""
    for model in models:
        path = resolve_local(model.source)
        if path is None and model.source.startswith("file:"):
            path = Path(urllib.parse.unquote(urllib.parse.urlparse(model.source).path))
        if path is not None and not path.exists():
            raise ImageBuildError(
                f"model {model.dest!r}: source {model.source!r} does not exist ({path})"
            )


def fetch_all(models: tuple[Model, ...], dest_root: Path) -> int:
    """Copy or download every model under dest_root; returns the bytes stored."""
    dest_root.mkdir(parents=True, exist_ok=True)
    for model in models:
        fetch(model, dest_root)
    return sum(f.stat().st_size for f in dest_root.rglob("*") if f.is_file())


def fetch(model: Model, dest_root: Path) -> Path:
    """Place one model at dest_root/<dest>, unpacking archives; verify sha256 when given."""
    dest = dest_root / model.dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_root, prefix=".fetch-") as tmp:
        src = resolve_local(model.source)
        if src is None:
            src = _download(model.source, Path(tmp))
        elif not src.exists():
            raise ImageBuildError(
                f"model {model.dest!r}: source {model.source!r} does not exist ({src})"
            )
        if model.sha256 and src.is_file():
            digest = _sha256(src)
            if digest != model.sha256:
                raise ImageBuildError(
                    f"model {model.dest!r}: sha256 of {model.source} is {digest}, expected {model.sha256}"
                )
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        elif src.name.endswith(ARCHIVES):
            _unpack(src, dest, model.source)
        else:
            shutil.copyfile(src, dest)
    log.info("model %s <- %s", model.dest, model.source)
    return dest


def _download(url: str, tmp: Path) -> Path:
    target = tmp / (Path(urllib.parse.urlparse(url).path).name or "download")
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            open(target, "wb") as out,
        ):
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        raise ImageBuildError(f"cannot download model {url}: {exc}") from None
    return target


def _unpack(archive: Path, dest: Path, source: str) -> None:
    """Unpack an archive; a single top-level folder is stripped (Vosk zips have one)."""
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".unpack-") as tmp:
        try:
            if archive.name.endswith(".zip"):
                with zipfile.ZipFile(archive) as zf:
                    for name in zf.namelist():
                        if name.startswith("/") or ".." in Path(name).parts:
                            raise ImageBuildError(f"model archive {source}: unsafe path {name!r}")
                    zf.extractall(tmp)
            else:
                with tarfile.open(archive) as tf:
                    tf.extractall(tmp, filter="data")
        except (zipfile.BadZipFile, tarfile.TarError, OSError) as exc:
            raise ImageBuildError(f"model archive {source}: cannot unpack: {exc}") from None
        entries = list(Path(tmp).iterdir())
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() else Path(tmp)
        shutil.copytree(top, dest, dirs_exist_ok=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
