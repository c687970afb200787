"""The HTTP side under load: ``POST /predict`` with one event per request (``python -m
bench.http_load``).

For 1 and 2 processes: ``streamscore``'s worker processes (``python -m worker run``, HTTP on,
process i on port + i, consuming an idle topic of the bench's broker) and, next to them, the
baseline (:mod:`bench.http_baseline`: the same pipeline behind a plain ASGI app under uvicorn,
one process per port). The load generator is ``wrk`` (Debian package ``wrk``): one wrk per
port, ``--connections`` connections each, for ``--seconds``; requests/s are summed over the
ports, p50/p99 are wrk's (the slower port's). Every request sends the same ~800-byte event.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import kafkautil
from bench.data import Events, TrainedModel, train_models
from bench.proc import Child, say
from bench.workers import REPO, Setup, fresh_topics, running, write_config

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def wrk_missing() -> str | None:
    if shutil.which("wrk") is None:
        return "wrk is not installed (apt-get install wrk)"
    return None


def _free_ports(n: int) -> int:
    """A base port with ``n`` consecutive free ports."""
    from broker import free_port

    for _ in range(50):
        base = free_port()
        if all(_port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ready(url: str, body: bytes, timeout_s: float, alive: Any) -> None:
    """Until ``url`` answers 200 to the event (the model is loaded)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        alive()
        request = urllib.request.Request(
            url, data=body, headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s:.0f}s (last: {last})")


def _wrk(urls: list[str], body: bytes, seconds: float, connections: int, work: Path) -> dict:
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n",
        encoding="utf-8",
    )
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    procs = [
        subprocess.Popen([*cmd, url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for url in urls
    ]
    outputs = [p.communicate(timeout=seconds + 60)[0] for p in procs]
    rps = 0.0
    p50: list[float] = []
    p99: list[float] = []
    errors = 0
    for out in outputs:
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if found is None:
            raise RuntimeError(f"wrk gave no rate:\n{out}")
        rps += float(found.group(1))
        lat = {q: float(v) * _UNIT_MS[u] for q, v, u in _LATENCY.findall(out)}
        p50.append(lat["50"])
        p99.append(lat["99"])
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors += int(bad.group(1)) if bad else 0
        socket_errors = re.search(r"Socket errors: (.*)", out)
        if socket_errors:
            errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return {"requests_per_s": rps, "p50_ms": max(p50), "p99_ms": max(p99), "errors": errors}


@contextlib.contextmanager
def _baseline(model: TrainedModel, processes: int, base: int, work: Path) -> Iterator[list[Child]]:
    env = dict(
        os.environ,
        BENCH_MODEL=str(model.artifact),
        BENCH_FEATURES=",".join(model.features),
        PYTHONPATH=str(REPO),
    )
    children: list[Child] = []
    try:
        for i in range(processes):
            cmd = [sys.executable, "-m", "uvicorn", "bench.http_baseline:app"]
            cmd += ["--host", "127.0.0.1", "--port", str(base + i), "--log-level", "warning"]
            children.append(Child(cmd, log_path=work / f"baseline-{i}.log", env=env, cwd=REPO))
        yield children
    finally:
        for child in children:
            child.stop(grace_s=5.0)


def _alive(children: list[Child]) -> Any:
    def check() -> None:
        for child in children:
            if not child.alive():
                raise RuntimeError(f"a server exited:\n{child.tail()}")

    return check


def measure(
    work: Path, *, seconds: float, connections: int, processes: list[int], engine: str = "tansu"
) -> dict[str, Any]:
    say("http: training the model")
    model = train_models(work, ["lr"])["lr"]
    _, body = Events().event(0)
    rows: list[dict[str, Any]] = []
    with kafkautil.broker(work / "broker", engine) as (bootstrap, described, _pid):
        setup = Setup(bootstrap=bootstrap, work=work)
        for n in processes:
            with fresh_topics(setup, "http") as names:
                config, log_dir = write_config(
                    setup, names, model_root=model.store_root, model_name=model.model_name
                )
                base = _free_ports(n)
                text = config.read_text(encoding="utf-8")
                text = text.replace("[http]\nenabled = false\nport = 0", "")
                config.write_text(
                    text + f'\n[http]\nenabled = true\nhost = "127.0.0.1"\nport = {base}\n',
                    encoding="utf-8",
                )
                with running(setup, config, log_dir, n) as workers:
                    urls = [f"http://127.0.0.1:{base + i}/predict" for i in range(n)]
                    for url in urls:
                        _ready(url, body, 120, workers.check_alive)
                    say(f"http: streamscore, {n} process(es), {seconds:g}s of wrk")
                    rows.append(
                        {"server": "streamscore", "processes": n}
                        | _wrk(urls, body, seconds, connections, work)
                    )
        for n in processes:
            base = _free_ports(n)
            with _baseline(model, n, base, work) as children:
                urls = [f"http://127.0.0.1:{base + i}/predict" for i in range(n)]
                for url in urls:
                    _ready(url, body, 60, _alive(children))
                say(f"http: baseline, {n} process(es), {seconds:g}s of wrk")
                rows.append(
                    {"server": "baseline", "processes": n}
                    | _wrk(urls, body, seconds, connections, work)
                )
    version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "broker": described,
        "wrk": (version.stdout or version.stderr).splitlines()[0].strip(),
        "connections_per_port": connections,
        "seconds": seconds,
        "event_bytes": len(body),
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    base = {r["processes"]: r for r in result["rows"] if r["server"] == "baseline"}
    lines = [
        "| server | processes | requests/s | × baseline | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        ref = base.get(r["processes"])
        ratio = f"{r['requests_per_s'] / ref['requests_per_s']:.2f}" if ref else ""
        name = (
            "streamscore worker (`POST /predict`)"
            if r["server"] == "streamscore"
            else "baseline: plain ASGI app + `predict` (uvicorn)"
        )
        lines.append(
            f"| {name} | {r['processes']} | {r['requests_per_s']:,.0f} | {ratio} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=8, help="wrk connections per port")
    p.add_argument("--processes", default="1,2", help="comma-separated process counts")
    p.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    missing = wrk_missing()
    if missing:
        print(f"bench.http_load: {missing}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        result = measure(
            Path(tmp),
            seconds=args.seconds,
            connections=args.connections,
            processes=[int(n) for n in args.processes.split(",")],
            engine=args.broker,
        )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(
        f"POST /predict, one {result['event_bytes']}-byte event per request; {result['wrk']}, "
        f"{result['connections_per_port']} connections per port, {result['seconds']:g}s; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
