"""``python -m castrig`` is the ``castrig`` command."""

import sys

from castrig.cli.main import main

sys.exit(main())
