"""The README runs as written: its user journey on a fresh store, and links that resolve."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
ARTIFACTS = REPO / "var" / "test-artifacts"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def journey_block(text: str) -> str:
    """The first fenced ``bash`` block under the heading "The user journey"."""
    section = text.split("## The user journey", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "no ```bash block under 'The user journey'"
    return match.group(1)


def anchors(text: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces to '-'."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_readme_links_resolve_inside_the_repository():
    text = README.read_text(encoding="utf-8")
    assert "../" not in re.sub(r"```.*?```", "", text, flags=re.S), "a path outside the repo"
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        if not path:
            assert anchor in anchors(text), f"README links #{anchor}: no such heading"
            continue
        resolved = (REPO / path).resolve()
        assert resolved.is_relative_to(REPO), f"README links {target}: outside the repository"
        assert resolved.exists(), f"README links {target}: no such file in the repository"


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 2 minutes alone; much more on a loaded machine
def test_readme_user_journey_runs_as_written_on_a_fresh_store(tmp_path):
    """Every command of the block, in one bash with ``set -e``: a command that fails fails
    the test. The block runs in a fresh folder with the repository's config.toml (and the files it
    names), pointed at
    a broker on a free port and HTTP on free ports, so commands added later run too."""
    from broker import free_port

    port = free_port()
    # What a clone has beside config.toml and the config names: the demo's examples file.
    for name in ("config.toml", "examples.jsonl"):
        shutil.copy(REPO / name, tmp_path / name)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMSCORE")},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "STREAMSCORE_CONFIG": str(tmp_path / "config.toml"),
        "STREAMSCORE__BROKER__PORT": str(port),
        "STREAMSCORE__KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "STREAMSCORE__HTTP__PORT": "0",
        "STREAMSCORE__TRAINER__PORT": "0",
        "COLUMNS": "120",
    }
    # Whatever the block leaves running (a failed step skips its `kill`) is stopped at exit.
    cleanup = (
        "trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; wait || true; "
        "streamscore broker stop >/dev/null 2>&1 || true; exit $rc' EXIT\n"
    )
    script = "set -euo pipefail -x\n" + cleanup + journey_block(README.read_text(encoding="utf-8"))
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    output = done.stdout + done.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "readme-journey.log").write_text(output, encoding="utf-8")
    assert done.returncode == 0, output[-6000:]
    assert "unchanged since v1" in output
    assert "2 of 2 members ready" in output
    assert "promoted" in output and "rollback" in output.lower()
