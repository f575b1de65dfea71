"""Small durable-file helpers shared by the alert spool and the receiver's first response."""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write `path` whole or not at all; with `exclusive`, only if it does not exist (False if it did).

    Durable once it returns True: the data is fsynced before the rename (or link), and the folder after
    it, so the new name survives a power cut too (without the folder's fsync, the rename may be lost).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
        else:
            os.replace(tmp, path)
        fsync_folder(path.parent)
        return True
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


def fsync_folder(folder: Path) -> None:
    """Make the names in `folder` durable (a file created, renamed or linked into it survives a power cut)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def data_folder(package: str, *, pattern: str) -> Path:
    """The folder of one of our data packages (`queries`, `reports`), in the source tree or an installed wheel.

    Raises ConfigurationError, naming the folder, when it holds no file matching `pattern`: an
    incomplete install must fail loudly, never read as an empty registry.
    """
    from importlib.resources import files

    from keyresponse.errors import ConfigurationError

    try:
        folder = Path(str(files(package)))
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"the {package!r} package of keyresponse is not installed ({exc})") from exc
    if not any(folder.glob(pattern)):
        raise ConfigurationError(f"no {pattern} files in {folder}: the keyresponse install is incomplete "
                                 f"(reinstall it; a wheel ships them as package data)")
    return folder
