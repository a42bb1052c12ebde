"""The ``wakeword`` config section and where model files come from."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from toyd import setting

from .detector import WakeWordSpec

# openWakeWord's public pre-trained models, shipped inside the wyoming-openwakeword package.
# Licence: CC BY-NC-SA 4.0 (non-commercial) — for tests and demos; products bring their own.
BUILTIN_PACKAGE = "wyoming_openwakeword"
BUILTIN_WORDS = ("alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy", "ok_nabu")
BUILTIN_FILES = {
    "melspec": "melspectrogram.tflite",
    "embedding": "embedding_model.tflite",
    **{word: f"{word}_v0.1.tflite" for word in BUILTIN_WORDS},
}
# Where the SD image installs model files (image/build.yaml `models:`).
IMAGE_MODELS_DIR = "/opt/toyd/models/wakeword"


def builtin_models_dir() -> Path | None:
    """The models folder of the installed wyoming-openwakeword package, found without importing it."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@dataclasses.dataclass(frozen=True)
class WakeWordModel:
    """One wake word: which model file and how eagerly it triggers."""

    name: str = setting(
        doc="Name in events and logs; without path, one of the built-in models: "
        + ", ".join(BUILTIN_WORDS)
        + "."
    )
    path: str | None = setting(
        None,
        doc="Your .tflite openWakeWord model; null uses the built-in model named `name` (non-commercial licence).",
    )
    threshold: float = setting(
        0.5, min=0.01, max=1.0, doc="Score (0-1) at or above which a chunk counts as the wake word."
    )
    refractory: float = setting(
        2.0,
        min=0.0,
        max=60.0,
        doc="Seconds after a trigger during which this model cannot trigger again.",
    )
    patience: int = setting(
        1, min=1, max=25, doc="Consecutive 80 ms chunks at or above threshold needed to trigger."
    )

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a wake word model needs a name")
        if self.path is None and self.name not in BUILTIN_WORDS:
            raise ValueError(
                f"no built-in model named {self.name!r} (built-in: {', '.join(BUILTIN_WORDS)}); "
                "set path: to your own .tflite model"
            )


@dataclasses.dataclass(frozen=True)
class WakeWordSettings:
    """Settings of the ``wakeword`` section."""

    models: tuple[WakeWordModel, ...] = setting(
        (WakeWordModel(name="hey_jarvis"),),
        doc="Wake word models to run at once (each scored every 80 ms).",
    )
    melspec_path: str | None = setting(
        None, doc="openWakeWord melspectrogram.tflite; null uses the built-in one."
    )
    embedding_path: str | None = setting(
        None, doc="openWakeWord embedding_model.tflite; null uses the built-in one."
    )
    models_dir: str = setting(
        IMAGE_MODELS_DIR,
        doc="Folder searched first for the built-in model files (the SD image installs them here); "
        "then the wyoming-openwakeword package.",
    )
    barge_in: bool = setting(
        False,
        doc="Also listen while the toy speaks, so the wake word interrupts it (needs echo-free audio).",
    )
    threads: int = setting(1, min=1, max=4, doc="CPU threads per tflite model.")

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models needs at least one wake word model")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("two wake word models have the same name")


def _resolve(
    path: str | None, builtin: str, base: Path, models_dir: str = IMAGE_MODELS_DIR
) -> Path:
    if path is not None:
        file = Path(path).expanduser()
        return file if file.is_absolute() else base / file
    installed = Path(models_dir) / BUILTIN_FILES[builtin]
    if installed.is_file():
        return installed
    folder = builtin_models_dir()
    if folder is None:
        from .detector import WakeWordModelError

        raise WakeWordModelError(
            f"built-in model {builtin!r} is neither in {models_dir} nor in the "
            "wyoming-openwakeword package (pip install 'toyd[models]'); set a path to your own model"
        )
    return folder / BUILTIN_FILES[builtin]


def model_paths(settings: WakeWordSettings, base: Path) -> tuple[Path, Path, list[WakeWordSpec]]:
    """Melspectrogram, embedding and per-word specs; relative paths are taken from ``base``."""
    melspec = _resolve(settings.melspec_path, "melspec", base, settings.models_dir)
    embedding = _resolve(settings.embedding_path, "embedding", base, settings.models_dir)
    specs = [
        WakeWordSpec(
            name=m.name,
            path=_resolve(m.path, m.name, base, settings.models_dir),
            threshold=m.threshold,
            refractory=m.refractory,
            patience=m.patience,
        )
        for m in settings.models
    ]
    return melspec, embedding, specs
