"""User-facing errors: one clear message that names the fix."""

from __future__ import annotations


class NasxError(Exception):
    """An error caused by the user's input (config, data, checkpoint, run directory).

    ``run.py`` prints its message on one line and exits with status 2; it is never shown as a
    traceback. The message must say what is wrong *and* how to fix it.
    """
