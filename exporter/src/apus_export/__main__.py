"""`python -m apus_export ...` runs the command-line exporter."""

import sys

from .cli import main

sys.exit(main())
