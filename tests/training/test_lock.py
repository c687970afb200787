"""The training lock: one run at a time per model, released however the run ends."""

from __future__ import annotations

import os
import threading

import pytest

from streamscore.exceptions import TrainingError
from training.lock import hold_training_lock, training_lock, training_lock_path


def test_lock_path_is_in_the_model_folder(make_config, tmp_path):
    cfg = make_config()
    assert training_lock_path(cfg) == tmp_path / "models" / "breast-cancer" / ".training.lock"


def test_lock_refuses_a_second_holder_naming_the_pid(tmp_path):
    path = tmp_path / "m" / ".training.lock"
    with training_lock(path), pytest.raises(TrainingError) as err, training_lock(path):
        pass
    assert str(err.value).startswith(f"another training run holds {path} (pid {os.getpid()})")


def test_lock_refuses_another_thread(tmp_path):
    path = tmp_path / ".training.lock"
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with training_lock(path):
                pass
        except TrainingError as exc:
            errors.append(exc)

    with training_lock(path):
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(10)
    assert len(errors) == 1


def test_lock_is_released_after_the_run_and_after_an_error(tmp_path):
    path = tmp_path / ".training.lock"
    with training_lock(path):
        pass
    with pytest.raises(RuntimeError), training_lock(path):
        raise RuntimeError("boom")
    with training_lock(path):
        assert path.read_text() == str(os.getpid())
    assert path.read_text() == ""


def test_hold_training_lock_uses_the_configured_model(make_config):
    cfg = make_config()
    with hold_training_lock(cfg) as path:
        assert path == training_lock_path(cfg)
        with pytest.raises(TrainingError, match="another training run holds"), training_lock(path):
            pass
