"""The error for bad input, shared by every command.

`InputError` is raised before any expensive work starts (no model loaded, no data read beyond what the check needs),
and its message says what is wrong and how to fix it. Each part of the package raises it, or a subclass that names the
part (`NotTripletDataError`, `SynthesisError`, `PushError`, ...), so that a command line turns any of them into one
``error: ...`` line with exit status 2, and a caller can catch them all at once.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a file, a folder, a column, a flag, a model that does not fit); the message names the fix."""


__all__ = ["InputError"]
