"""One line per training step: pending, running, done (with a note and seconds) or failed.

Shown with rich's Progress when enabled; every step is also logged, and ``on_step`` (used by the
retraining service's job log) hears each step as it starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

log = logging.getLogger(__name__)

PENDING = "[dim]·[/]"
RUNNING = "[yellow]›[/]"
DONE = "[green]✓[/]"
SKIPPED = "[dim]-[/]"
FAILED = "[red]✗[/]"


class _SecondsColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.start_time is None:
            return Text("")
        seconds = task.finished_time if task.finished_time is not None else task.elapsed
        return Text(f"{seconds or 0.0:.2f}s", style="dim")


class Step:
    """Handed to the body of a step: set ``note`` to say what the step found."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.note = ""
        self.mark = DONE

    def skip(self, note: str) -> None:
        """The step had nothing to do; ``note`` says why."""
        self.mark = SKIPPED
        self.note = note

    def refuse(self, note: str) -> None:
        """The step ran and said no (the gate): shown as failed, the run goes on."""
        self.mark = FAILED
        self.note = note


class StepProgress:
    """A context manager showing ``steps``; run each with ``with progress.step(name) as s:``."""

    def __init__(
        self,
        steps: Sequence[str],
        *,
        enabled: bool = True,
        console: Console | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.on_step = on_step
        self.display: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        if enabled:
            self.display = Progress(
                TextColumn("{task.fields[mark]}"),
                TextColumn("{task.description:<9}"),
                _SecondsColumn(),
                TextColumn("{task.fields[note]}"),
                console=console,
                transient=False,
            )
            for name in steps:
                self.tasks[name] = self.display.add_task(
                    name, total=1, start=False, mark=PENDING, note=""
                )

    def __enter__(self) -> StepProgress:
        if self.display is not None:
            self.display.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.display is not None:
            self.display.stop()

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        if self.on_step is not None:
            self.on_step(name)
        task = self.tasks.get(name)
        if self.display is not None and task is not None:
            self.display.start_task(task)
            self.display.update(task, mark=RUNNING)
        state = Step(name)
        started = time.perf_counter()
        try:
            yield state
        except BaseException as exc:
            if self.display is not None and task is not None:
                self.display.stop_task(task)
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                short = first if len(first) <= 80 else first[:77] + "..."
                self.display.update(task, mark=FAILED, note=f"[red]{escape(short)}[/]")
            log.info("step %s failed after %.2fs", name, time.perf_counter() - started)
            raise
        seconds = time.perf_counter() - started
        log.info("step %s: %s (%.2fs)", name, state.note or "done", seconds)
        if self.display is not None and task is not None:
            self.display.update(task, completed=1, mark=state.mark, note=escape(state.note))
