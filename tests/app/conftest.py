"""Fixtures for the command-line tests.

The training commands run against the same config files as the training tests
(:mod:`tests.training.conftest`): ``make_config`` writes one into ``tmp_path``, ``cfg`` adds the
exported demo data.
"""

from tests.training.conftest import cfg, make_config

__all__ = ["cfg", "make_config"]
