"""The version of the code that trains a network: a hash of the sources whose change can change a trained
network's accuracy. Cached baseline results (`nas.search.folder.BaselineCache`) and a killed job's checkpoint
(`nas.train.checkpoint`) are reused only by the same code, so an update of the blocks or the trainer never
mixes two codes' arithmetic."""

from __future__ import annotations

import hashlib
from pathlib import Path

# The sources whose change can change a trained network's accuracy: blocks, builder, configs, data, trainer.
CODE_PARTS = ("blocks", "builder.py", "config.py", "data.py", "train", "madds")


def code_version() -> str:
    """A 10-hex hash of the package's network and training sources (`CODE_PARTS`)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha1()
    for part in CODE_PARTS:
        p = root / part
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p] if p.is_file() else []
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


__all__ = ["CODE_PARTS", "code_version"]
