"""The one exception family for bad input that a user can fix.

Stages catch `PipelineError`, print its message (which names what was wrong and what is
allowed) and exit non-zero; anything else is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """Bad input: a params value, a download, a data file, an image."""
