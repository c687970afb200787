"""Model artifact formats: skops (safe, the default) and joblib (a pickle, by explicit choice).

A pickle runs whatever code its bytes name while it loads; a checksum proves the bytes are the
ones registered, not that they are harmless. So:

* every version is written with :mod:`skops.io`, whose loader rebuilds objects from a schema
  and refuses any type it was not told to trust (no ``__reduce__`` of an arbitrary callable);
* trusted types are skops's own list (scikit-learn estimators, numpy and scipy containers,
  builtins), :data:`BUILTIN_TRUSTED_TYPES` (scikit-learn/numpy internals fitted models hold),
  and ``[model_store] trusted_types`` for a team's own transformers. An artifact needing any
  other type is refused, naming the types and that key;
* joblib artifacts (stores written before skops, or a model skops cannot represent) load only
  with ``[model_store] allow_pickle = true``; refused otherwise, before a byte is unpickled.

The format is named by the artifact's file name (:data:`SKOPS_ARTIFACT` / ``*.joblib``).
:func:`load_user_file` is the one place a data scientist's own pickle is opened, in the
process that imports it (``streamscore models import``): the store then keeps it as skops.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamscore.exceptions import IntegrityError, ModelStoreError

log = logging.getLogger(__name__)

SKOPS = "skops"
JOBLIB = "joblib"
SKOPS_ARTIFACT = "model.skops"
JOBLIB_ARTIFACT = "model.joblib"  # what stores wrote before the skops format
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
TRUST_KEY = "[model_store] trusted_types"
PICKLE_KEY = "[model_store] allow_pickle"

#: Types fitted scikit-learn models hold that skops does not trust out of the box. Each is a
#: plain data holder rebuilt from its state (checked on scikit-learn 1.9.1): no callables.
BUILTIN_TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)


@dataclass(frozen=True)
class ArtifactPolicy:
    """What a store may load: extra trusted types, and whether pickles are allowed at all.

    ``trusted_types`` holds fully qualified type names (``mypkg.features.ClipOutliers``) or a
    module prefix ending in ``.*`` (``mypkg.*``: every type defined under ``mypkg``).
    """

    trusted_types: tuple[str, ...] = ()
    allow_pickle: bool = False

    def trusts(self, type_name: str) -> bool:
        if type_name in BUILTIN_TRUSTED_TYPES or type_name in self.trusted_types:
            return True
        return any(t.endswith(".*") and type_name.startswith(t[:-1]) for t in self.trusted_types)

    def untrusted(self, type_names: Iterable[str]) -> list[str]:
        return sorted({t for t in type_names if not self.trusts(t)})


def format_of(artifact: str) -> str:
    """``skops`` or ``joblib``, from the artifact's file name."""
    if artifact.endswith(".skops"):
        return SKOPS
    if artifact.endswith(PICKLE_SUFFIXES):
        return JOBLIB
    raise IntegrityError(
        f"artifact {artifact!r} has no known format: expected {SKOPS_ARTIFACT} (skops) or "
        f"{JOBLIB_ARTIFACT} (joblib); register the model again"
    )


def untrusted_message(what: str, types: Sequence[str]) -> str:
    shown = ", ".join(types)
    listing = ", ".join(f'"{t}"' for t in types)
    return (
        f"{what} needs {len(types)} type{'s' if len(types) > 1 else ''} outside the trusted "
        f"list: {shown}. Loading it would construct them, so it is refused; if you trust the "
        f"code that defines them, add them to {TRUST_KEY} (e.g. trusted_types = [{listing}])"
    )


# --------------------------------------------------------------------------- writing


def dumps(model: Any, policy: ArtifactPolicy, *, what: str) -> bytes:
    """The model as skops bytes, refused when it needs types ``policy`` does not trust (so a
    version that no worker would load is never registered)."""
    import skops.io as sio

    try:
        blob: bytes = sio.dumps(model)
    except Exception as exc:
        raise ModelStoreError(
            f"{what}: the model cannot be written in the skops format "
            f"({type(exc).__name__}: {exc}); make its custom parts plain Python objects "
            f"(attributes of numbers, arrays, lists, dicts), or keep the model out of the store"
        ) from exc
    refused = policy.untrusted(sio.get_untrusted_types(data=blob))
    if refused:
        raise ModelStoreError(untrusted_message(what, refused))
    return blob


# --------------------------------------------------------------------------- reading


def loads(blob: bytes, artifact: str, policy: ArtifactPolicy, *, what: str) -> Any:
    """Rebuild a verified artifact's model. Untrusted skops types and pickles without
    ``allow_pickle`` are :class:`IntegrityError` s raised before any object is built."""
    fmt = format_of(artifact)
    if fmt == JOBLIB:
        check_pickle_allowed(what, policy)
        import joblib

        try:
            return joblib.load(io.BytesIO(blob))
        except Exception as exc:
            raise IntegrityError(
                f"{what}: checksum ok but it could not be unpickled "
                f"({type(exc).__name__}: {exc}); check the installed libraries"
            ) from exc
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    # One pass when every type is trusted by name (skops audits the whole tree before it
    # builds anything); a second, with the type list, only when a prefix may trust the rest.
    exact = [*BUILTIN_TRUSTED_TYPES, *(t for t in policy.trusted_types if not t.endswith(".*"))]
    try:
        try:
            return sio.loads(blob, trusted=exact)
        except UntrustedTypesFoundException:
            pass
        check_loadable(blob, artifact, policy, what=what)
        return sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    except IntegrityError:
        raise
    except zipfile.BadZipFile as exc:
        raise _unreadable(what, artifact, exc) from exc
    except Exception as exc:
        raise IntegrityError(
            f"{what}: checksum ok but the skops file could not be loaded "
            f"({type(exc).__name__}: {exc}); check the installed libraries"
        ) from exc


def check_pickle_allowed(what: str, policy: ArtifactPolicy | None = None) -> None:
    """Refuse a joblib artifact unless the policy allows pickles (``policy=None``: refuse)."""
    if policy is not None and policy.allow_pickle:
        return
    raise IntegrityError(
        f"{what} is a joblib pickle, and loading a pickle runs any code its bytes name; "
        f"refused. Set {PICKLE_KEY} = true to load pickles written before the skops format "
        f"(only if no one without your trust can write to the store), or register the model "
        f"again (it is then written as skops)"
    )


def check_loadable(blob: bytes, artifact: str, policy: ArtifactPolicy, *, what: str) -> None:
    """Everything :func:`loads` would refuse, without building the model (``verify``)."""
    if format_of(artifact) == JOBLIB:
        check_pickle_allowed(what, policy)
        return
    import skops.io as sio

    try:
        needed = sio.get_untrusted_types(data=blob)
    except Exception as exc:
        raise _unreadable(what, artifact, exc) from exc
    refused = policy.untrusted(needed)
    if refused:
        raise IntegrityError(untrusted_message(what, refused))


def _unreadable(what: str, artifact: str, exc: Exception) -> IntegrityError:
    return IntegrityError(
        f"{what}: {artifact} is not a readable skops file ({type(exc).__name__}: {exc}); "
        f"register the model again"
    )


def load_user_file(path: Path, policy: ArtifactPolicy | None = None) -> Any:
    """Open a model file a data scientist brings (``models import``).

    ``*.skops`` loads with the trusted types of ``policy`` (default: the built-in ones); a
    pickle (``*.joblib``, ``*.pkl``, ``*.pickle``) is unpickled here, because the person
    importing it trusts their own file. ``ModelStore.register`` then writes it as skops, so
    no worker ever unpickles it."""
    path = Path(path)
    if path.suffix != ".skops" and path.suffix not in PICKLE_SUFFIXES:
        raise ModelStoreError(
            f"{path}: unknown model file type {path.suffix!r}; give a .skops file or a "
            f"pickle ({', '.join(PICKLE_SUFFIXES)})"
        )
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelStoreError(f"cannot read model file {path}: {exc}") from exc
    if path.suffix == ".skops":
        return loads(blob, path.name, policy or ArtifactPolicy(), what=str(path))
    import joblib

    try:
        return joblib.load(io.BytesIO(blob))
    except Exception as exc:
        raise ModelStoreError(
            f"{path}: cannot be unpickled ({type(exc).__name__}: {exc}); save it with "
            f"joblib.dump in an environment with the libraries installed here"
        ) from exc
