"""Every command and module path kept as a string resolves to what it names.

``streamscore``'s subcommands, ``worker``'s lazily imported names and the ``python -m``
entry points are strings so that nothing is imported before it is needed; these tests are
what keeps the strings honest after a module moves.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import click
import pytest

import worker
from app.cli import SUBCOMMANDS, main

#: The ``python -m`` entry points (the supervisor starts ``python -m worker run``).
ENTRY_POINTS = ("streamscore", "worker", "producer", "model_store", "training")


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_target_resolves_to_a_click_command(name):
    module_name, _, attr = SUBCOMMANDS[name].partition(":")
    command = getattr(importlib.import_module(module_name), attr)
    assert isinstance(command, click.Command)
    assert main.get_command(click.Context(main), name) is command


def test_unknown_subcommand_is_none_not_an_import_error():
    assert main.get_command(click.Context(main), "no-such-command") is None


@pytest.mark.parametrize("name", sorted(worker.__all__))
def test_worker_lazy_name_resolves(name):
    assert getattr(worker, name).__name__ == name


@pytest.mark.parametrize("package", ENTRY_POINTS)
def test_python_dash_m_entry_point_exists(package):
    assert importlib.util.find_spec(f"{package}.__main__") is not None


def test_python_dash_m_worker_accepts_what_the_supervisor_passes():
    result = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--index" in result.stdout and "--config" in result.stdout
