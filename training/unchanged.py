"""No identical versions: find the version a retrain would only repeat.

Two runs make the same model when they read the same data (sha256), follow the same recipe
(the ``[training]`` section, gate included, minus where the file lies, which the sha256
covers, and the schedule, which decides only when) and run the same code (git commit and the library
versions a manifest records). :func:`identical_version` names the newest version made that way,
so ``streamscore train`` can say "unchanged since vN" and register nothing (``--force`` trains
anyway).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from model_store import DataFingerprint, Manifest

#: ``[training]`` keys left out: the data's sha256 stands for its path; the schedule is timing.
NOT_IN_RECIPE = frozenset({"data_path", "schedule"})


@dataclass(frozen=True)
class Recipe:
    """What makes a model: data, training settings and code."""

    data_sha256: str
    training: dict[str, Any]
    git_commit: str | None
    libraries: dict[str, str]

    @classmethod
    def of(
        cls,
        data: DataFingerprint,
        config: dict[str, Any],
        git_commit: str | None,
        libraries: dict[str, str],
    ) -> Recipe:
        training = config.get("training") or {}
        return cls(
            data_sha256=data.sha256,
            training={k: v for k, v in training.items() if k not in NOT_IN_RECIPE},
            git_commit=git_commit,
            libraries=dict(libraries),
        )

    @classmethod
    def of_manifest(cls, manifest: Manifest) -> Recipe | None:
        if manifest.data is None:
            return None
        return cls.of(manifest.data, manifest.config, manifest.git_commit, manifest.libraries)


def identical_version(versions: Iterable[Manifest], recipe: Recipe) -> Manifest | None:
    """The newest version made by ``recipe``, or None when this run would make a new model."""
    same = [m for m in versions if Recipe.of_manifest(m) == recipe]
    return max(same, key=lambda m: m.version) if same else None
