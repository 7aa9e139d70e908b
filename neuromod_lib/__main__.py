"""``python -m neuromod_lib``: see :mod:`neuromod_lib.cli`."""

import sys

from .cli import main

sys.exit(main())
