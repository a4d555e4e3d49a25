"""``participants.tsv``: one row per subject, merged into every scan of the subject.

The file is read strictly (UTF-8, tab-separated, a ``participant_id`` column,
one value per column on every row), because a misaligned row silently moves
values (an age into the ``site`` column) and a wrong site changes the
statistics. A file that breaks a rule is rejected whole with a message that
names the line and the fix; discovery then goes on without it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cohort_sciseg.discover._fs import MAX_TABLE_BYTES, read_regular
from cohort_sciseg.errors import DiscoveryError, format_error

__all__ = ["Participants", "read_participants"]

_MAX_LINES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Participants:
    """The rows of a ``participants.tsv``.

    Attributes
    ----------
    path
        The file.
    columns
        Column names in file order.
    rows
        Subject label (without ``sub-``) -> the row as ``(column, value)`` pairs,
        values as written (``"n/a"`` stays ``"n/a"``).
    """

    path: str
    columns: tuple[str, ...]
    rows: dict[str, tuple[tuple[str, str], ...]]

    def value(self, sub: str, column: str) -> str | None:
        """The ``column`` value of subject ``sub``, ``None`` when the subject or column is absent."""
        row = self.rows.get(sub)
        if row is None:
            return None
        return dict(row).get(column)


def _error(path: str, what: str, fix: str, expected: str | None = None) -> DiscoveryError:
    msg = format_error(what, path=path, expected=expected, fix=fix)
    return DiscoveryError(msg, path=path)


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_MAX_LINES_SHOWN])
    more = f" and {len(numbers) - _MAX_LINES_SHOWN} more" if len(numbers) > _MAX_LINES_SHOWN else ""
    return f"line{'s' if len(numbers) > 1 else ''} {shown}{more}"


def read_participants(path: str | os.PathLike[str]) -> Participants:
    """Read a BIDS ``participants.tsv``.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    Participants
        Rows keyed by subject label; ``participant_id`` may be written with or
        without the ``sub-`` prefix.

    Raises
    ------
    DiscoveryError
        The file is not a regular file (a FIFO, a folder, a symlink loop, ...),
        cannot be read, is larger than
        :data:`~cohort_sciseg.discover._fs.MAX_TABLE_BYTES`, is not UTF-8, is empty, has no
        ``participant_id`` column, has rows with a different number of fields
        than the header, or lists a subject twice. The message names the line.
    """
    p = os.fspath(path)
    raw = read_regular(p, what="participants.tsv", max_bytes=MAX_TABLE_BYTES)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise _error(
            p,
            f"participants.tsv is not UTF-8 text (line {bad_line}, byte {raw[exc.start]:#04x})",
            "re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 participants.tsv > tmp && mv tmp participants.tsv`)",
            expected="UTF-8 text (BIDS)",
        ) from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or not lines[0].strip():
        raise _error(
            p,
            "participants.tsv is empty or its first line is blank",
            "write a header line starting with participant_id, or remove the file",
            expected="a header line with a participant_id column",
        )
    header = [c.strip() for c in lines[0].split("\t")]
    if "participant_id" not in header:
        hint = (
            " (the file looks comma-separated; BIDS requires tabs)"
            if "\t" not in lines[0] and "," in lines[0]
            else ""
        )
        raise _error(
            p,
            f"line 1: no participant_id column among {header!r}{hint}",
            "name the subject column participant_id and separate columns with tabs",
            expected="a tab-separated header with a participant_id column",
        )
    id_col = header.index("participant_id")
    rows: dict[str, tuple[tuple[str, str], ...]] = {}
    first_line: dict[str, int] = {}
    ragged: list[int] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            ragged.append(number)
            continue
        fields = [f.strip() for f in fields]
        pid = fields[id_col]
        label = pid[4:] if pid.startswith("sub-") else pid
        if not label:
            raise _error(
                p,
                f"line {number}: empty participant_id {pid!r}",
                "write the subject as sub-<label> on every row",
                expected="sub-<label>",
            )
        if label in rows:
            raise _error(
                p,
                f"line {number}: participant_id {pid!r} is already on line {first_line[label]}",
                "keep one row per subject",
            )
        first_line[label] = number
        rows[label] = tuple(zip(header, fields, strict=True))
    if ragged:
        raise _error(
            p,
            f"{_lines(ragged)}: wrong number of fields (the header has {len(header)} columns)",
            "give every row one tab-separated value per column (write n/a for a missing value)",
            expected=f"{len(header)} tab-separated values per row",
        )
    return Participants(path=p, columns=tuple(header), rows=rows)
