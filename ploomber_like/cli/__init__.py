"""The command line: a thin layer over the Python API.

``python -m tracker FILE -p a=1`` runs a file (the default command); ``ls``, ``show``, ``query``,
``keys``, ``sample-query``, ``compare``, ``diff``, ``ui`` and ``report`` read the database;
``comment``, ``tag``, ``untag`` and ``rm`` change it; ``rerun`` and ``export`` share runs.
Each module of this package adds its commands to the group in :mod:`~ploomber_like.cli.base`,
which imports a command's module when the command is first used.
"""

from ploomber_like.cli.base import cli, main

__all__ = ["cli", "main"]
