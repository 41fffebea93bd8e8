"""Content fingerprints of files (the lock file, data files) for reproducibility records."""

from __future__ import annotations

import hashlib
import os
from typing import Optional

# The pinned environment: the repository's lock file (recorded by the Trainer, checked by the report).
LOCK_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "requirements.lock")


def file_sha256(path: str) -> Optional[str]:
    """Hex sha256 of a file's bytes, or None when it does not exist."""
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
