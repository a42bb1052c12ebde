"""MQTT for plugins of both roles: the paho ↔ asyncio bridge and the broker settings.

Importing :mod:`toyd.mqtt.bridge` needs paho-mqtt (the ``device`` or ``cloud`` extra);
the settings do not.
"""

from .settings import BrokerSettings, TlsSettings

__all__ = ["BrokerSettings", "TlsSettings"]
