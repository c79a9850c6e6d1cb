"""``python -m speedrun``: the ``speedrun`` command (``speedrun --help``)."""

import sys

from ._cli import main

sys.exit(main())
