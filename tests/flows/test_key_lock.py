"""Two runs about one key never race: the second waits on the key's lock, held by another process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.respond_to_exposed_key import _key_lock
from keyresponse.settings import get_settings

KEY = "AKIALOCKTEST00000001"

HOLDER = """
import fcntl, sys, time
from pathlib import Path
marks = Path(sys.argv[2])
with open(sys.argv[1], "a+b") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    marks.write_text("locked")
    time.sleep(1.0)
    marks.write_text("released")
"""


def test_a_second_holder_waits_until_the_first_process_releases_the_key(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYRESPONSE_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        lock = tmp_path / "home" / "locks" / f"{KEY}.lock"
        lock.parent.mkdir(parents=True)
        marks = tmp_path / "marks"
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(marks)])
        deadline = time.monotonic() + 30
        while not marks.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marks.read_text() == "locked"
        waited: list[bool] = []
        with _key_lock(KEY, lambda: waited.append(True)):
            seen = marks.read_text()
        holder.wait(30)
        assert waited == [True] and seen == "released"
        with _key_lock(KEY, lambda: waited.append(True)):  # free again, and a crash-free holder released it
            pass
        assert waited == [True]
        with pytest.raises(Exception, match="access key"), _key_lock("../../etc/passwd"):
            pass
    finally:
        get_settings.cache_clear()
