"""``python -m monitor``: ``streamscore monitor`` on its own."""

from app.monitor_cli import monitor

monitor(prog_name="python -m monitor")
