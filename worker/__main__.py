"""``python -m worker``: the worker commands (what the supervisor starts), from :mod:`app`."""

from app.worker_cli import group

group()
