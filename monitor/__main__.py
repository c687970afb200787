"""``python -m monitor``: ``streamscore monitor`` on its own."""

from monitor.cli import monitor

monitor(prog_name="python -m monitor")
