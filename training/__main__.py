from training.cli import group

group()
