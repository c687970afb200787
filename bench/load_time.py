"""Model load and hot-swap time, skops (the store's format) vs joblib (pickles), side by side.

``python -m bench.load_time [--repeat 20]``: trains the demo models (logistic regression and
HistGradientBoosting) with ``training.run.train``, stores each model twice, once as skops
(what ``register`` writes) and once as a joblib version (as stores written before skops
hold, loaded with ``allow_pickle``), and measures in this process:

* **load**: ``ModelStore.load`` (read, sha256, rebuild the model), median and max of
  ``--repeat`` runs;
* **swap**: what a worker's reloader does between the alias moving and the new model being
  ready to swap in (``ModelReloader.check``: load, compile the schema validator, one smoke
  prediction, the stored examples), median of ``--repeat`` alias moves;
* the artifact size, and in a fresh interpreter the one-time cost of ``import skops.io``
  (it enumerates scikit-learn's estimators) next to the imports a worker makes anyway.

No broker is needed. Numbers are wall-clock on this machine; it is shared, so compare the
columns of one run rather than runs with each other.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.data import MODELS, train_models


def _timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _import_cost() -> dict[str, float]:
    code = """
        import time
        from worker.lean import skip_pandas
        skip_pandas()
        t0 = time.perf_counter()
        import joblib, sklearn.pipeline, sklearn.linear_model, sklearn.ensemble  # noqa
        t1 = time.perf_counter()
        import skops.io  # noqa
        t2 = time.perf_counter()
        print((t1 - t0) * 1000, (t2 - t1) * 1000)
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    base, skops_ms = (float(x) for x in done.stdout.split())
    return {"sklearn_joblib_ms": base, "skops_ms": skops_ms}


def _write_joblib_version(folder: Path, version: int, model: Any, manifest: dict[str, Any]) -> None:
    """``version`` as stores written before skops hold it: ``model.joblib`` + manifest."""
    import hashlib

    import joblib

    from streamscore import jsonio

    target = folder / str(version)
    target.mkdir()
    joblib.dump(model, target / "model.joblib")
    digest = hashlib.sha256((target / "model.joblib").read_bytes()).hexdigest()
    data = {**manifest, "version": version, "artifact": "model.joblib", "sha256": digest}
    (target / "manifest.json").write_bytes(jsonio.dumps_pretty(data))


def _swap_ms(store: Any, reloader: Any, version: int, other: int, repeat: int) -> list[float]:
    """Alias moves to ``version`` (from ``other``), each timed until the reloader is ready."""
    out = []
    for _ in range(repeat):
        store.book.move("production", version, action="promote", at="bench")
        started = time.perf_counter()
        event = reloader.check()
        out.append((time.perf_counter() - started) * 1000)
        assert event is not None and event.outcome == "loaded", event
        store.book.move("production", other, action="promote", at="bench")
        reloader.check()
    return out


def measure(repeat: int) -> list[dict[str, Any]]:
    from model_store import ModelStore
    from model_store.artifact import ArtifactPolicy
    from worker.reloader import ModelReloader
    from worker.validation import ValidationPolicy

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        models = train_models(Path(tmp), list(MODELS))
        for trained in models.values():
            store = ModelStore(
                trained.store_root, trained.model_name, policy=ArtifactPolicy(allow_pickle=True)
            )
            template = store.manifest(1).to_dict()
            _write_joblib_version(store.folder, 2, store.load(1).model, template)
            reloader = ModelReloader(store, "production", ValidationPolicy())
            for fmt, version, other in (("skops", 1, 2), ("joblib", 2, 1)):
                load_ms = _timed(lambda s=store, v=version: s.load(v), repeat)
                swap_ms = _swap_ms(store, reloader, version, other, repeat)
                manifest = store.manifest(version)
                size = (store.folder / str(version) / manifest.artifact).stat().st_size
                rows.append(
                    {
                        "model": trained.title,
                        "format": fmt,
                        "artifact_kib": size / 1024,
                        "load_median_ms": statistics.median(load_ms),
                        "load_max_ms": max(load_ms),
                        "swap_median_ms": statistics.median(swap_ms),
                        "swap_max_ms": max(swap_ms),
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    rows = measure(args.repeat)
    imports = _import_cost()
    print(
        f"{'model':<22} {'format':<7} {'artifact':>9} {'load p50':>9} {'load max':>9} "
        f"{'swap p50':>9} {'swap max':>9}"
    )
    for r in rows:
        print(
            f"{r['model']:<22} {r['format']:<7} {r['artifact_kib']:>6.0f} KiB "
            f"{r['load_median_ms']:>6.1f} ms {r['load_max_ms']:>6.1f} ms "
            f"{r['swap_median_ms']:>6.1f} ms {r['swap_max_ms']:>6.1f} ms"
        )
    print(
        f"one-time imports in a fresh worker process: scikit-learn + joblib "
        f"{imports['sklearn_joblib_ms']:.0f} ms, then skops.io +{imports['skops_ms']:.0f} ms"
    )


if __name__ == "__main__":
    main()
