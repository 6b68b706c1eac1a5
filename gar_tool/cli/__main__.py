"""``python -m gar_tool.cli`` = the ``gar`` command."""

import sys

from gar_tool.cli import main

sys.exit(main())
