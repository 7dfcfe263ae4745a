"""The image files of a set as one short parameter: what reruns the set's organize job.

Snakemake checks every input file of every job when it plans: it matches the file against each
rule's outputs, stats it and formats it. With 32 images per checkpoint the image files were
32,000 of the 55,000 inputs of a 1,000-checkpoint plan and a fifth of its time (bench figure
`plan`); a real set of 50,000 images was 50,000 inputs of one job. As a parameter, the same
facts (each file's path, size and modification time) rerun the organize job when any of them
changes, through Snakemake's `params` rerun trigger (on by default), for one stat per file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path


def files_fingerprint(paths: Sequence[str | Path]) -> str:
    """sha256 of each file's path, size and modification time (ns), in the order given.

    A symlink counts as the file it points to (as discovery follows it): pointing it elsewhere
    changes the fingerprint. A file gone since discovery counts as missing, so the organize job
    runs and says so by name.
    """
    digest = hashlib.sha256()
    for path in paths:
        try:
            st = os.stat(path)
            facts = f"{st.st_size}\0{st.st_mtime_ns}"
        except OSError:
            facts = "missing"
        digest.update(os.fsencode(path) + b"\0" + facts.encode() + b"\n")
    return digest.hexdigest()
