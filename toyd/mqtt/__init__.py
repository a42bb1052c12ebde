"""MQTT for plugins of both roles: the paho ↔ asyncio bridge and the broker settings.

Starting a :class:`~toyd.mqtt.bridge.MqttBridge` needs paho-mqtt (the ``device`` or
``cloud`` extra); importing the bridge and the settings does not.
"""

from .settings import BrokerSettings, TlsSettings

__all__ = ["BrokerSettings", "TlsSettings"]
