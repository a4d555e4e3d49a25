"""Directory listing that never leaves the dataset root.

A symlink is followed only when it resolves inside the dataset root: a link to
``/etc`` or to another user's data must not become part of a cohort. Only
symlinks are resolved (one :func:`os.path.realpath` each); ordinary entries
cost nothing beyond :func:`os.scandir`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cohort_sciseg.errors import DiscoveryError, format_error

__all__ = ["inside", "list_dir"]


def inside(path: str, root_real: str) -> bool:
    """Whether ``path`` resolves to ``root_real`` or below (``root_real`` already resolved)."""
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real + os.sep)


def list_dir(
    path: str, root_real: str, relevant: Callable[[str], bool] | None = None
) -> tuple[list[os.DirEntry[str]], list[DiscoveryError]]:
    """Entries of ``path`` sorted by name, without hidden files and escaping symlinks.

    Parameters
    ----------
    path
        Folder to list (inside ``root_real``).
    root_real
        The dataset root, resolved with :func:`os.path.realpath`.
    relevant
        Which names discovery would use (``None``: all). An escaping symlink
        with another name (``sourcedata -> /mnt/raw``) is dropped silently.

    Returns
    -------
    (entries, problems)
        Entries sorted by name (deterministic order on every filesystem); one
        :class:`DiscoveryError` per relevant symlink that resolves outside the
        root, or for a folder that cannot be listed.
    """
    problems: list[DiscoveryError] = []
    try:
        with os.scandir(path) as it:
            entries = [e for e in it if not e.name.startswith(".")]
    except OSError as exc:
        msg = format_error(
            f"cannot list the folder ({type(exc).__name__}: {exc.strerror or exc})",
            path=path,
            expected="a readable folder",
            fix="check the permissions (`ls -ld`) and that the dataset is fully mounted",
        )
        return [], [DiscoveryError(msg, path=path)]
    entries.sort(key=lambda e: e.name)
    kept = []
    for entry in entries:
        if entry.is_symlink() and not inside(entry.path, root_real):
            if relevant is not None and not relevant(entry.name):
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
