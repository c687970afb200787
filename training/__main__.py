"""``python -m training``: the ``train`` and ``demo-data`` commands."""

from training.cli import group

group(prog_name="python -m training")
