"""``python -m model_store``: the ``models`` command group on its own, from :mod:`app`."""

from app.models_cli import models

models(prog_name="python -m model_store")
