"""``python -m ploomber_like.tracking``: the command line, as ``python -m tracker``."""

import sys

from ploomber_like.cli import main

main(sys.argv[1:])
