"""``python -m model_store``: the ``models`` command group on its own."""

from model_store.cli import models

models(prog_name="python -m model_store")
