"""The production image, compose file and dashboards refer only to things that exist."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import yaml
from click.testing import CliRunner

from app.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\b(streamscore_[a-z_]+)\b")


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def cli_accepts(args: list[str]) -> bool:
    result = CliRunner().invoke(main, [*args, "--help"])
    return result.exit_code == 0


def test_dockerfile_copies_only_existing_paths():
    for op, rest in dockerfile_instructions():
        if op == "COPY" and "--from=" not in rest:
            *sources, _dest = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_dockerfile_installs_from_the_lock_and_runs_the_worker_as_non_root():
    instructions = dockerfile_instructions()
    runs = " ".join(rest for op, rest in instructions if op == "RUN")
    assert "-r requirements.lock" in runs
    user = [rest for op, rest in instructions if op == "USER"]
    assert user and not user[-1].startswith("root") and not user[-1].startswith("0")
    entry = json.loads(next(rest for op, rest in instructions if op == "ENTRYPOINT"))
    cmd = json.loads(next(rest for op, rest in instructions if op == "CMD"))
    assert entry == ["streamscore"]
    assert cli_accepts(cmd)
    assert any(op == "HEALTHCHECK" and "/healthz" in rest for op, rest in instructions)
    assert "STREAMSCORE_CONFIG" in " ".join(rest for op, rest in instructions if op == "ENV")


def test_compose_mounts_existing_files_and_runs_real_commands():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "trainer", "worker-1", "worker-2", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        if name.startswith(("worker", "trainer")):
            assert cli_accepts(service["command"]), f"{name}: {service['command']}"


def test_prometheus_scrapes_the_compose_services():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    for target in targets:
        assert target.split(":")[0] in compose["services"]


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "streamscore-dashboard.json").read_text())
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(METRIC.findall(target["expr"]))
    return names


def test_dockerfile_copies_every_package_the_project_installs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.split(".")[0] for name in pyproject["tool"]["setuptools"]["packages"]}
    copied = {
        shlex.split(rest)[0]
        for op, rest in dockerfile_instructions()
        if op == "COPY" and "--from=" not in rest
    }
    assert packages <= copied, f"Dockerfile does not copy {sorted(packages - copied)}"
