"""The product's standalone worker, as fault tests start it: `python -m tests.faults.worker`.

Exactly `python -m temporal_worker`, plus test-only faults given on the command line
(`--pause-after-write SECONDS` holds each tool activity's first attempt after it ran,
so a test can kill the worker there). The product's worker has no such hooks.
"""

from __future__ import annotations

import argparse

from temporal_worker.__main__ import run
from tests.interceptors import AfterWrite

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pause-after-write", type=float, default=0)
    options = parser.parse_args()
    interceptors = [AfterWrite(pause_seconds=options.pause_after_write)]
    run(interceptors if options.pause_after_write else [])
