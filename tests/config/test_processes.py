"""config/processes.py's children, with real processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from config.processes import Child, free_port


def test_a_child_ready_by_the_time_it_is_waited_for_counts_as_ready(tmp_path: Path) -> None:
    """Children are launched together and waited for one after another: a slow first one
    may outlast a later one's start timeout, which must still pass if it is ready."""
    port = free_port()
    child = Child(
        name="http",
        command=[sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        log_path=tmp_path / "http.log",
        ready_port=("127.0.0.1", port),
        start_timeout=1.0,
    )
    child.launch()
    try:
        time.sleep(2.0)  # another child's wait, longer than this one's timeout
        child.wait_ready()
        assert child.returncode is None
    finally:
        child.stop()
