from producer.cli import group

group()
