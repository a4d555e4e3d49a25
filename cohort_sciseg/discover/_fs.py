"""File-system access of discovery: never leaves the dataset root, never raises, never blocks.

A dataset is user data: any entry may be a symlink loop, a broken link, a FIFO,
a socket, a device, a folder where a file is expected, or a name that is not
UTF-8; and opening a FIFO blocks until someone writes to it. Every entry
discovery follows and every file it opens goes through this module, which
turns each of these into a :class:`DiscoveryError` naming the path and a fix
instead of an :class:`OSError` (or a hang).

A symlink is followed only when it resolves inside the dataset root: a link to
``/etc`` or to another user's data must not become part of a cohort. Only
symlinks are resolved (one :func:`os.path.realpath` each); ordinary entries
cost nothing beyond :func:`os.scandir`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cohort_sciseg.errors import DiscoveryError, format_error

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_TABLE_BYTES",
    "PathKind",
    "entry_kind",
    "inside",
    "kind_of",
    "list_dir",
    "printable",
    "read_regular",
    "unusable",
]

#: Largest JSON file read (sidecars, dataset_description.json); real ones are a few kB.
MAX_JSON_BYTES = 16 * 2**20
#: Largest table or list read (participants.tsv, include/exclude files).
MAX_TABLE_BYTES = 256 * 2**20

_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_REPLACE = "replace it with a regular file, or remove it"


@dataclass(frozen=True, slots=True)
class PathKind:
    """What a path is once its symlinks are followed.

    Attributes
    ----------
    kind
        ``"file"`` (a regular file), ``"dir"``, ``"other"`` (FIFO, socket,
        device), ``"missing"`` (nothing there), ``"broken"`` (a symlink to
        nothing) or ``"error"`` (a symlink loop, no permission, an I/O error).
    detail
        Words for a message: ``"a FIFO (named pipe)"``, ``"a symlink loop ..."``.
    fix
        What the user can do about it (empty for ``"file"`` and ``"dir"``).
    size
        Size in bytes of a regular file found by :func:`kind_of` (else 0).
    """

    kind: Literal["file", "dir", "other", "missing", "broken", "error"]
    detail: str
    fix: str = ""
    size: int = 0


def _from_mode(mode: int, size: int = 0) -> PathKind:
    if stat.S_ISREG(mode):
        return PathKind("file", "a regular file", size=size)
    if stat.S_ISDIR(mode):
        return PathKind("dir", "a folder")
    detail = next(
        (d for test, d in _SPECIAL if test(mode)), f"a special file ({stat.filemode(mode)})"
    )
    return PathKind("other", detail, _REPLACE)


def _failure(path: str, exc: OSError) -> PathKind:
    reason = f"{type(exc).__name__}: {exc.strerror or exc}"
    if exc.errno == errno.ELOOP:
        return PathKind(
            "error",
            "a symlink loop (a link that points, directly or through other links, back to itself)",
            "remove the link, or point it at the real file or folder (`ls -l` shows where it points)",
        )
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return PathKind(
                "broken",
                f"a broken symlink (to {target!r}, which does not exist)",
                "restore the file it points to, or remove the link",
            )
        return PathKind("missing", "missing", "check the path (and that the disk is mounted)")
    if isinstance(exc, PermissionError):
        return PathKind(
            "error",
            f"not accessible ({reason})",
            "check the permissions of the file and of the folders above it (`ls -ld`)",
        )
    return PathKind(
        "error",
        f"not accessible ({reason})",
        "check that the dataset is fully mounted and readable",
    )


def kind_of(path: str) -> PathKind:
    """What ``path`` is, following symlinks (one :func:`os.stat`); never raises."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return _failure(path, exc)
    except ValueError:  # an embedded NUL byte
        return PathKind("error", "not a valid path (it holds a NUL byte)", "correct the path")
    return _from_mode(st.st_mode, st.st_size)


def entry_kind(entry: os.DirEntry[str]) -> PathKind:
    """What a listed entry is, following symlinks; never raises.

    Costs no system call for an ordinary file or folder (the type comes with
    the listing); a symlink or a special file costs one :func:`os.stat`.
    ``size`` is left 0.
    """
    try:
        if entry.is_dir():
            return PathKind("dir", "a folder")
        if entry.is_file():
            return PathKind("file", "a regular file")
        st = entry.stat()
    except OSError as exc:
        return _failure(entry.path, exc)
    return _from_mode(st.st_mode)


def printable(path: str) -> str:
    """``path`` with bytes that are not UTF-8 written as ``\\xNN`` (safe in tables and messages)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def unusable(
    path: str, kind: PathKind, *, what: str, expected: str, then: str = ""
) -> DiscoveryError:
    """The error for ``path`` that is not what discovery needs: ``<what> is <kind.detail><then>``."""
    msg = format_error(
        f"{what} is {kind.detail}{then}",
        path=printable(path),
        expected=expected,
        fix=kind.fix or _REPLACE,
    )
    return DiscoveryError(msg, path=printable(path))


def read_regular(path: str, *, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file, checked before it is opened.

    The type is checked with :func:`os.stat` first (so a FIFO, a socket or a
    device is never opened), the file is opened without blocking and checked
    again on the open descriptor (it may have been replaced in between), and
    at most ``max_bytes`` are read.

    Parameters
    ----------
    path
        The file.
    what
        Its role for messages (``"participants.tsv"``, ``"the sidecar"``).
    max_bytes
        Largest size accepted; a larger file is refused unread.

    Raises
    ------
    DiscoveryError
        ``path`` is not a regular file, cannot be opened or read, or is larger
        than ``max_bytes``. The message says which, with a fix.
    """
    expected = "a regular file"
    kind = kind_of(path)
    if kind.kind != "file":
        raise unusable(path, kind, what=f"cannot read {what}: it", expected=expected)
    size = kind.size
    if size <= max_bytes:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            with open(os.open(path, flags), "rb") as fh:
                now = _from_mode(os.fstat(fh.fileno()).st_mode)
                if now.kind != "file":
                    raise unusable(path, now, what=f"cannot read {what}: it", expected=expected)
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise unusable(
                path, _failure(path, exc), what=f"cannot read {what}: it", expected=expected
            ) from None
        if len(data) <= max_bytes:
            return data
    msg = format_error(
        f"cannot read {what}: it is larger than the limit of {max_bytes} bytes "
        f"({f'{size} bytes' if size > max_bytes else 'it grew while being read'})",
        path=printable(path),
        expected=f"{what} under {max_bytes // 2**20} MiB",
        fix="check that this is the right file (it may be a misnamed image or archive) and remove or replace it",
    )
    raise DiscoveryError(msg, path=printable(path))


def inside(path: str, root_real: str) -> bool:
    """Whether ``path`` resolves to ``root_real`` or below (``root_real`` already resolved)."""
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real + os.sep)


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:  # vanished since the listing; entry_kind reports what it is now
        return False


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_dir(
    path: str, root_real: str, relevant: Callable[[str], bool] | None = None
) -> tuple[list[os.DirEntry[str]], list[DiscoveryError]]:
    """Entries of ``path`` sorted by name, without hidden files, escaping symlinks and non-UTF-8 names.

    Parameters
    ----------
    path
        Folder to list (inside ``root_real``).
    root_real
        The dataset root, resolved with :func:`os.path.realpath`.
    relevant
        Which names discovery would use (``None``: all). An escaping symlink
        or a non-UTF-8 name that discovery would not use (``sourcedata -> /mnt/raw``)
        is dropped silently.

    Returns
    -------
    (entries, problems)
        Entries sorted by name (deterministic order on every filesystem); one
        :class:`DiscoveryError` per relevant symlink that resolves outside the
        root, per relevant name that is not UTF-8 (it could not be written to
        the Parquet tables), or for a folder that cannot be listed.
    """
    problems: list[DiscoveryError] = []
    try:
        with os.scandir(path) as it:
            entries = [e for e in it if not e.name.startswith(".")]
    except OSError as exc:
        msg = format_error(
            f"cannot list the folder ({type(exc).__name__}: {exc.strerror or exc})",
            path=printable(path),
            expected="a readable folder",
            fix="check the permissions (`ls -ld`) and that the dataset is fully mounted",
        )
        return [], [DiscoveryError(msg, path=printable(path))]
    entries.sort(key=lambda e: e.name)
    kept = []
    for entry in entries:
        wanted = relevant is None or relevant(entry.name)
        if not _utf8(entry.name):
            if wanted:
                msg = format_error(
                    f"file name '{printable(entry.name)}' is not UTF-8 text; skipped",
                    path=printable(entry.path),
                    expected="UTF-8 file names (BIDS)",
                    fix="rename it (e.g. `convmv -f latin1 -t utf-8 --notest FILE`)",
                )
                problems.append(DiscoveryError(msg, path=printable(entry.path)))
            continue
        if _is_link(entry) and not inside(entry.path, root_real):
            if not wanted:
                continue
            target = os.path.realpath(entry.path)
            msg = format_error(
                f"symlink points outside the dataset, to {target!r}; not followed",
                path=entry.path,
                expected=f"links that stay inside {root_real!r}",
                fix="copy the file into the dataset, or pass the folder it points to as its own BIDS dataset",
            )
            problems.append(DiscoveryError(msg, path=entry.path))
            continue
        kept.append(entry)
    return kept, problems
