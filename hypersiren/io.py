"""File-system helpers: atomic writes, a full disk reported in one line, input-file and output-directory checks."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator

from hypersiren.errors import InputError, NoSpaceError

TEMPORARY_PREFIX = ".hypersiren-"  # atomic writes' temporary files: .hypersiren-<name>.<random>.tmp beside <name>
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota exceeded, file-size limit


@contextlib.contextmanager
def reporting_full_disk(target: str | Path, then: str) -> Iterator[None]:
    """Inside the block, an OSError for lack of space (``NO_SPACE``) becomes a one-line NoSpaceError naming
    ``target``, and a NoSpaceError from a nested block gets ``then`` appended (what this level keeps or advises)."""
    try:
        yield
    except NoSpaceError as err:
        raise NoSpaceError(f"{err}; {then}") from None
    except OSError as err:
        if err.errno not in NO_SPACE:
            raise
        raise NoSpaceError(f"no space left to write {target} ({err.strerror or err}); {then}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for writers that take a file name; if the block succeeds the file is
    fsynced and renamed over ``path``, so readers see the old file or the new one, never half of one. If the disk
    is full the temporary file is removed and NoSpaceError says so; ``path`` is left as it was."""
    path = Path(path)
    with reporting_full_disk(path, f"{path.name} was not written; any earlier {path.name} is unchanged"):
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMPORARY_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual permissions
        try:
            yield Path(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """``atomic_path`` for writers that take an open file: the file object of the temporary path."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def write_json(path: str | Path, obj) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_table_and_metrics(out_dir: str | Path, name: str, table: str, metrics: dict) -> None:
    """An evaluation's results: ``out_dir/name.md`` (its markdown table) and ``out_dir/metrics.json``, each
    written atomically."""
    with atomic_write(Path(out_dir) / f"{name}.md", "w") as f:
        f.write(table)
    write_json(Path(out_dir) / "metrics.json", metrics)


def prepare_output_dir(path: str | Path) -> Path:
    """Create ``path`` as a directory (parents too); a clear error if it is a file or not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"output directory {path} is a file; expected a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create output directory {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise InputError(f"output directory {path} is not writable")
    return path


def check_output_dir(path: str | Path) -> Path:
    """Check, without creating anything, that ``path`` is or can become a writable directory."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"output directory {path} is a file; expected a directory path")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot create output directory {path}: {parent} is a file")
    if not os.access(parent, os.W_OK):
        raise InputError(f"output directory {path} is not writable")
    return path


def check_output_file(path: str | Path) -> Path:
    """Check that a file can be written at ``path`` (its parent is created); returns the path."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output path {path} is a directory; expected a file name")
    prepare_output_dir(path.parent if str(path.parent) else ".")
    return path


def check_input_file(path: str | Path, what: str, expected: str) -> Path:
    """``path`` if it is a non-empty regular file; else InputError naming ``what`` it should hold and the
    ``expected`` kind of file. A directory, FIFO or device is refused before anything opens it (a FIFO would block)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path} (expected {expected})")
    if path.is_dir():
        raise InputError(f"expected {expected}, got a directory: {path}")
    if not path.is_file():
        kind = "a FIFO" if stat.S_ISFIFO(path.stat().st_mode) else "a device or socket"
        raise InputError(f"expected {expected}, got {kind}: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"cannot read {what} {path}: the file is empty; expected {expected}")
    return path
