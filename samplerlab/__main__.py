"""``python -m samplerlab`` is the ``samplerlab`` command."""

import sys

from samplerlab.cli import main

sys.exit(main())
