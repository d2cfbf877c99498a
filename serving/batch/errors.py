"""The batch side's one error type, in its own module so every batch module can raise it without import cycles."""

from __future__ import annotations


class LabelError(ValueError):
    """A problem the analyst can fix (bad option, missing column, mismatched resume); printed, not traced."""
