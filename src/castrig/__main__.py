"""``python -m castrig`` is the ``castrig`` command."""

import sys

from castrig.cli.entry import main

sys.exit(main())
