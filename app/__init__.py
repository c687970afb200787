"""The application layer: every command line (click) and the end-to-end demo.

Nothing imports this package except the ``python -m <package>`` entry points
(``streamscore/__main__.py``, ``worker/__main__.py`` ...). Each module holds one command or
group and imports the packages it drives on first use, so ``streamscore worker`` never loads
training code.
"""
