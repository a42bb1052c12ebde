"""configpush: the cloud side of config push; per-toy YAML files published retained over MQTT."""

from .plugin import ConfigPushPlugin, ConfigPushSettings

__all__ = ["ConfigPushPlugin", "ConfigPushSettings"]
