"""``python -m speedrun``: the ``speedrun`` command (``speedrun --help``)."""

import sys

from .cli._main import main

sys.exit(main())
