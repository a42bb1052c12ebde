"""mqtt: parent remote control over MQTT, Home Assistant discovery, config push from the cloud."""

from .plugin import MqttPlugin
from .settings import MqttSettings

__all__ = ["MqttPlugin", "MqttSettings"]
