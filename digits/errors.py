"""The project's one exception family: bad input that a user can fix.

`DigitsError` is raised by the pipeline and the app alike: a params value, a download, a data
file, a model file, an image. Its message names what was wrong and what is allowed. The stages
(stages/_cli.py) and the app's commands (digits/app/cli.py) catch it, print that message and
exit non-zero; anything else is a bug and keeps its traceback.
"""


class DigitsError(Exception):
    """Bad input a user can fix: a params value, a download, a data file, a model file, an
    image. Subclasses name the kind (ParamsError, DownloadError, IdxError, ImageError)."""
