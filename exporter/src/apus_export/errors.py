"""Errors raised by apus_export. Every message names the offending node, tensor or transform."""


class ExportError(ValueError):
    """The model (or an argument) cannot be written as an `.apus` v1 artifact."""


class UnsupportedTransformError(ExportError):
    """A preprocessing transform has no equivalent in the Apus preprocessing spec."""
