"""``python -m bench``: see :mod:`bench.command`."""

from bench.command import main

main()
