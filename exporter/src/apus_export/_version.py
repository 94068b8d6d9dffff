"""The package version (read by setuptools and written into every artifact's metadata)."""

__version__ = "0.1.0"
