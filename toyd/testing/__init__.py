"""Test helpers shipped for plugin authors: real brokers, speech, running daemons."""

from .helpers import espeak_pcm, free_port, next_event, running_daemon, start_mosquitto, wait_for

__all__ = ["espeak_pcm", "free_port", "next_event", "running_daemon", "start_mosquitto", "wait_for"]
