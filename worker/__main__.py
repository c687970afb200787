from worker.cli import group

group()
