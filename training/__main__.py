"""``python -m training``: the ``train`` and ``demo-data`` commands, from :mod:`app`."""

from app.train_cli import group

group(prog_name="python -m training")
