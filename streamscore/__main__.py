"""``python -m streamscore``: the ``streamscore`` command, from :mod:`app`."""

from app.cli import main

main()
