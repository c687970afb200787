"""Publish events from files to the input topic, and read predictions back."""

from producer.files import EventFileError, read_events
from producer.publisher import Publisher, PublishReport
from producer.results import Result, collect, read_topic

__all__ = [
    "EventFileError",
    "PublishReport",
    "Publisher",
    "Result",
    "collect",
    "read_events",
    "read_topic",
]
