"""Directories nginx's workers can read while other pytest sessions run.

nginx as root runs its workers as `nobody`, so the files it reads (user files, document roots)
need a world-searchable path. pytest's own temp root (/tmp/pytest-of-<user>) is set back to
0700 by any pytest session that starts meanwhile; a directory made directly under the system
temp dir keeps its mode.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def readable_tmpdir(prefix: str = "ngate-test-"):
    """A fresh 0755 directory under the system temp dir, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
