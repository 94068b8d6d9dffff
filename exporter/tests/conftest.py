"""Test setup: make `apus_export` importable from the source tree when it is not installed."""

import os
import sys

try:
    import apus_export  # noqa: F401
except ImportError:  # running from a checkout without `pip install`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
