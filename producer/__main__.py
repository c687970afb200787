"""``python -m producer``: ``publish`` and ``tail`` on their own, from :mod:`app`."""

from app.producer_cli import group

group()
