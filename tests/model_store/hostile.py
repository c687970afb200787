"""What an attacker with write access to the model folder would plant: a pickle that runs a
command (here: writes a marker file) and then yields a real model, with the manifest's sha256
updated to match, so the checksum alone lets it through."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

from streamscore import jsonio


def code_running_pickle(marker: Path, model: Any) -> bytes:
    """Unpickling these bytes writes ``marker`` and returns ``model``: nothing of the test
    suite needs to be importable (``eval`` and the standard library do it all)."""
    inner = pickle.dumps(model)
    source = (
        f"__import__('pathlib').Path({str(marker)!r}).write_text('payload ran') and None "
        f"or __import__('pickle').loads({inner!r})"
    )

    class Attack:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (eval, (source,))

    return pickle.dumps(Attack())


def plant(folder: Path, version: int, blob: bytes, artifact: str = "model.joblib") -> None:
    """Replace ``version``'s artifact with ``blob`` and make the manifest match it."""
    version_folder = folder / str(version)
    for old in ("model.skops", "model.joblib"):
        (version_folder / old).unlink(missing_ok=True)
    (version_folder / artifact).write_bytes(blob)
    manifest_file = version_folder / "manifest.json"
    data = jsonio.loads(manifest_file.read_bytes())
    data.update(artifact=artifact, sha256=hashlib.sha256(blob).hexdigest())
    manifest_file.write_bytes(jsonio.dumps_pretty(data))


def write_legacy_version(folder: Path, version: int, model: Any, manifest: dict[str, Any]) -> None:
    """A version as streamscore wrote them before skops: ``model.joblib`` + its manifest."""
    import joblib

    version_folder = folder / str(version)
    version_folder.mkdir(parents=True)
    joblib.dump(model, version_folder / "model.joblib")
    blob = (version_folder / "model.joblib").read_bytes()
    data = {**manifest, "version": version, "artifact": "model.joblib"}
    data["sha256"] = hashlib.sha256(blob).hexdigest()
    data.pop("files", None)
    data.pop("signature", None)
    (version_folder / "manifest.json").write_bytes(jsonio.dumps_pretty(data))
