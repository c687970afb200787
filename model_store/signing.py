"""Signed manifests: an HMAC-SHA256 of the canonical manifest, keyed by ``[model_store]
signing_key`` (set it from the environment: ``STREAMSCORE__MODEL_STORE__SIGNING_KEY``).

The manifest lists the sha256 of the artifact and of every extra file, so its signature covers
the whole version: write access to the store without the key cannot introduce or alter one.
The signature is the manifest's ``signature`` field, ``"hmac-sha256:<hex>"``, computed over
the manifest's other fields as compact JSON with sorted keys (:func:`canonical`), so fields
an older or newer streamscore does not know are covered too.

With a key configured, a version without a signature is refused like a wrong one: otherwise
deleting the field would be enough to bypass it. Without a key, signatures are not checked.
The key itself never leaves the :class:`~streamscore.config.Secret` it is read into.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

from streamscore.config import Secret
from streamscore.exceptions import IntegrityError

SIGNATURE_FIELD = "signature"
SCHEME = "hmac-sha256"
KEY_NAME = "[model_store] signing_key"


def canonical(manifest: Mapping[str, Any]) -> bytes:
    """The bytes signed: every field but the signature, compact, keys sorted."""
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def sign(manifest: Mapping[str, Any], key: Secret) -> str:
    digest = hmac.new(key.reveal().encode(), canonical(manifest), hashlib.sha256).hexdigest()
    return f"{SCHEME}:{digest}"


def signed(manifest: Mapping[str, Any], key: Secret) -> dict[str, Any]:
    """``manifest`` with its signature added (unchanged when ``key`` is empty)."""
    out = dict(manifest)
    if key:
        out[SIGNATURE_FIELD] = sign(manifest, key)
    return out


def verify(manifest: Mapping[str, Any], key: Secret, *, what: str) -> None:
    """Raise :class:`IntegrityError` unless ``manifest`` carries a valid signature for
    ``key``; nothing is checked when no key is configured."""
    if not key:
        return
    found = manifest.get(SIGNATURE_FIELD)
    if not found:
        raise IntegrityError(
            f"{what} is not signed, and {KEY_NAME} is set: a version written without the key "
            f"is refused. Register it again with the key set, or unset the key to serve "
            f"unsigned versions"
        )
    if not isinstance(found, str) or not hmac.compare_digest(found, sign(manifest, key)):
        raise IntegrityError(
            f"{what}: the manifest's signature does not verify with {KEY_NAME}: the manifest "
            f"was changed after it was signed, or signed with another key; it is refused. "
            f"Register the model again with the right key"
        )
