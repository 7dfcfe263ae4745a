"""One error type for what a user can fix, so the workflow can print it without a traceback."""

from __future__ import annotations

from pathlib import Path


class CkptEvalError(Exception):
    """A problem with the user's inputs or config: says what happened, where, and how to fix it."""

    def __init__(self, what: str, *, path: str | Path | None = None, fix: str | None = None):
        self.what = what
        self.path = str(path) if path is not None else None
        self.fix = fix
        parts = [what]
        if self.path:
            parts.append(f"  file: {self.path}")
        if fix:
            parts.append(f"  fix: {fix}")
        super().__init__("\n".join(parts))
