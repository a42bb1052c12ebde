"""``python -m toyd`` is the ``toyd`` command."""

import sys

from .cli import main

sys.exit(main())
