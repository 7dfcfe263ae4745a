"""Put this checkout's `ckpt_eval` first on sys.path; every script imports this before it.

Snakemake puts a script's own folder (scripts/) on sys.path, not the workflow's root. In the venv
`ckpt_eval` is installed, but the env of `--sdm conda` holds only the requirements (Snakemake also
strips PYTHONPATH from conda jobs), and a job should run the library of the workflow that planned
it in any case, not another installed copy. `STARTED`: when the script began, for the job's
timing line (`ckpt_eval.timing`).
"""

import sys
import time
from pathlib import Path

STARTED = time.time()

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
