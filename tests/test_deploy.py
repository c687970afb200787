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
        if name.startswith(("worker", "trainer", "monitor")):
            assert cli_accepts(service["command"]), f"{name}: {service['command']}"


def test_prometheus_scrapes_the_compose_services():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    for target in targets:
        assert target.split(":")[0] in compose["services"]


MONITOR_JOB = "streamscore-monitor"
JOB = re.compile(r'\bjob="([^"]+)"')


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "streamscore-dashboard.json").read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def dashboard_metrics(*, monitor: bool = False) -> set[str]:
    """Metrics the dashboard queries from the workers and the trainer, or (``monitor``) from
    ``streamscore monitor``: the expressions that select ``job="streamscore-monitor"``."""
    names = set()
    for expr in dashboard_expressions():
        if (MONITOR_JOB in JOB.findall(expr)) == monitor:
            names |= set(METRIC.findall(expr))
    return names


def test_dashboard_selects_only_jobs_prometheus_scrapes():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    used = {job for expr in dashboard_expressions() for job in JOB.findall(expr)}
    assert MONITOR_JOB in used and used <= jobs


def test_dockerfile_copies_every_package_the_project_installs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.split(".")[0] for name in pyproject["tool"]["setuptools"]["packages"]}
    copied = {
        shlex.split(rest)[0]
        for op, rest in dockerfile_instructions()
        if op == "COPY" and "--from=" not in rest
    }
    assert packages <= copied, f"Dockerfile does not copy {sorted(packages - copied)}"


def test_compose_workers_and_trainer_share_the_model_store_through_object_storage_only():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert "seaweedfs" in services and services["seaweedfs"]["command"][0] == "mini"
    for name in ("worker-1", "worker-2", "trainer"):
        service = services[name]
        env = service["environment"]
        assert env["STREAMSCORE__MODEL_STORE__ROOT"].startswith("s3://")
        assert env["STREAMSCORE__MODEL_STORE__ENDPOINT_URL"] == "http://seaweedfs:8333"
        assert "seaweedfs" in service["depends_on"]
        mounted = [v.split(":")[1] for v in service.get("volumes", []) if ":" in v]
        assert not any(path.startswith("/var/lib/streamscore/models") for path in mounted)
