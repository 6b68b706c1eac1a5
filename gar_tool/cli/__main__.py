"""``python -m gar_tool.cli`` = the ``gar`` command."""

import sys

from . import main

sys.exit(main())
