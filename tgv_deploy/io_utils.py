"""Writing files safely: never leave a half-written output behind."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from tgv_deploy.errors import InputError


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output whose directory is missing or not writable, before any work is done."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"output directory does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise InputError(f"output directory is not writable: {parent}")
    if path.is_dir():
        raise InputError(f"output path is a directory: {path}")
    return path


def check_not_overwriting(inputs: Sequence[str | os.PathLike], outputs: Sequence[str | os.PathLike]) -> None:
    """Refuse, before any work, an output (``outputs[i]`` written from ``inputs[i]``) that is one of
    the inputs or that another input also writes."""
    sources = {Path(p).resolve() for p in inputs}
    written: dict[Path, str | os.PathLike] = {}
    for source, output in zip(inputs, outputs, strict=True):
        target = Path(output).resolve()
        if target in sources:
            raise InputError(f"output {output} is also an input: choose another output path")
        if target in written:
            raise InputError(f"inputs {written[target]} and {source} would both write {output}: give them different names")
        written[target] = source


class OpenOnFirstWrite:
    """A binary output file created by its first write (``write``, ``flush`` and ``close`` only):
    a stream command that fails before it writes anything leaves no file behind."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file: BinaryIO | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        return self._file.write(data)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def check_run_directory(path: str | os.PathLike, resume: bool, overwrite: bool) -> Path:
    """Refuse to train into a non-empty run folder unless the user said what to do with it."""
    path = Path(path)
    if resume and overwrite:
        raise InputError("--resume continues the run in the folder, --overwrite replaces it: choose one")
    if path.exists() and not path.is_dir():
        raise InputError(f"run folder is a file: {path}")
    if resume or overwrite or not path.is_dir():
        return path
    contents = sorted(p.name for p in path.iterdir())
    if contents:
        shown = ", ".join(contents[:4]) + (", ..." if len(contents) > 4 else "")
        raise InputError(f"run folder {path} is not empty ({shown}): pass --resume to continue that run or --overwrite to start a new one")
    return path


def _create_temporary(directory: Path, name: str) -> Path:
    """Create an empty, new file beside the target with the mode a plain ``open(path, "w")`` gets.

    ``tempfile.mkstemp`` creates mode 0600 whatever the umask, and that mode would survive the
    rename: outputs meant to be shared would be private. Opening with 0666 lets the kernel apply
    the umask (0644 under umask 022); ``O_EXCL`` keeps the creation as safe as mkstemp's.
    """
    for _ in range(100):
        candidate = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a temporary file in {directory}")


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure delete it.

    The file is flushed to disk before the rename and the directory after it, so a crash leaves
    either the old file or the complete new one, never an empty or partial file under the name.
    The new file's mode follows the umask, like any file the user creates.
    """
    path = check_output_path(path)
    tmp_path = _create_temporary(path.parent, path.name)
    try:
        yield tmp_path
        _fsync_path(tmp_path)
        os.replace(tmp_path, path)
        try:
            _fsync_path(path.parent, directory=True)
        except OSError:
            # Some platforms and file systems cannot open or sync a directory; the rename itself
            # is still atomic there, only its durability across a power cut is not guaranteed.
            pass
    except OSError as exc:
        # A full disk shows in a write, an fsync (no file name) or a library's message about the
        # hidden temporary file: name the output the user asked for instead.
        if exc.filename in (None, str(tmp_path), tmp_path):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
