"""The notebook API: register a model fitted in Python, with its schema, metrics and gate.

In a notebook cell::

    from training import register_fitted

    manifest = register_fitted(model, X_test, y_test, config="config.toml", promote=True)
    manifest.version, manifest.metrics, manifest.gate["passed"]

``X_test`` is a DataFrame (or a 2-D array for a model fitted on one) of labelled rows the
model did not learn from, ``y_test`` their labels. They give the feature schema (checked
against ``feature_names_in_``), the metrics and the gate verdict, exactly as
``streamscore models import --data`` does.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

from model_store import FeatureSpec, Manifest
from streamscore.config import Config, load_config, with_overrides
from training.examples import load_examples
from training.importer import labelled_rows, read_schema_file, register_model
from training.sources import ModelSource


def register_fitted(
    model: Any,
    X: Any,
    y: Any,
    *,
    config: Config | str | os.PathLike[str] | None = None,
    name: str | None = None,
    schema: list[FeatureSpec] | str | os.PathLike[str] | None = None,
    test_size: float | None = None,
    gate: bool = True,
    promote: bool = False,
    examples: str | os.PathLike[str] | None = None,
) -> Manifest:
    """Register a fitted ``model`` evaluated on ``X``, ``y``; returns the manifest.

    ``config``: a loaded :class:`~streamscore.config.Config` or the path of ``config.toml``
    (default: ``$STREAMSCORE_CONFIG``, then ``./config.toml``); it names the store, the gate
    and the alias. ``name`` overrides ``[model_store] model_name``. ``schema`` (feature specs or
    a JSON schema file) replaces the one derived from ``X``. ``test_size`` evaluates on that
    share of the rows only. ``promote=True`` moves the served alias when the gate passes and
    raises :class:`~training.importer.ImportRefused` (its ``result`` holds the registered
    candidate) when it does not; ``gate=False`` registers without judging. ``examples``: a
    JSON-lines file of examples with expectations, judged with the gate and stored with the
    version (every worker runs them at load).
    The manifest's ``gate`` holds the verdict, ``metrics`` the numbers, ``imported`` the origin.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    if name:
        cfg = with_overrides(cfg, model_store={"model_name": name})
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    source = ModelSource(
        model, Path(f"<python {type(model).__name__}>"), hashlib.sha256(blob).hexdigest(), "python"
    )
    specs = read_schema_file(Path(schema)) if isinstance(schema, (str, os.PathLike)) else schema
    result = register_model(
        cfg,
        source,
        rows=labelled_rows(X, y),
        schema=specs,
        test_size=test_size,
        gate=gate,
        promote=promote,
        examples=load_examples(Path(examples), what="examples") if examples else None,
    )
    return result.manifest
