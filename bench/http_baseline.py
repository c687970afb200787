"""The baseline of the HTTP rows: the same model behind the plainest ASGI app that calls
``predict`` per request, as a data scientist would write it in ten lines.

``BENCH_MODEL`` is a joblib file (the bench's plain copy of the pipeline), ``BENCH_FEATURES``
the comma-separated feature order. Served by uvicorn: ``python -m uvicorn
bench.http_baseline:app --port P``. No validation, no metrics, no dead letters: the floor.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
import orjson

_MODEL = joblib.load(os.environ["BENCH_MODEL"])
_FEATURES = os.environ["BENCH_FEATURES"].split(",")
_CLASSES = [str(c) for c in _MODEL.classes_]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    event = orjson.loads(body)
    row = np.array([[float(event[f]) for f in _FEATURES]])
    proba = _MODEL.predict_proba(row)[0]
    out = orjson.dumps(
        {
            "id": event.get("id"),
            "prediction": _CLASSES[int(proba.argmax())],
            "probabilities": dict(zip(_CLASSES, proba.tolist(), strict=True)),
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": out})
