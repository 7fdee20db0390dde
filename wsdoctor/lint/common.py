"""Helpers every configuration parser shares: reading files, showing paths."""

from __future__ import annotations

import os

from wsdoctor.lint.facts import LintInputError


def shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies under it, else as given."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def read_text(path: str, line: int | None = None, by: str | None = None) -> str:
    """The text of a configuration file; a :class:`LintInputError` when it cannot be read.

    ``by``/``line``: the file and line that included it, named in the error.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except IsADirectoryError:
        raise LintInputError(f"{path} is a directory, not a configuration file", by, line) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise LintInputError(f"cannot read {path}: {reason}", by, line) from None
