"""The comparisons a run's QC report links to (``cohort-sciseg compare``).

A comparison page lives in its own folder (it is about two runs); each run's report
keeps a list of the comparisons made with it, ``report/comparisons.json``, which
:func:`register_comparison` updates and the report's Cohort page shows
(:func:`comparison_links`, links relative to the report). Rebuilding a report keeps
the list; a comparison whose page is gone is not shown.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cohort_sciseg.io import RunLayout, atomic_write_text

__all__ = ["COMPARISONS_FILE", "comparison_links", "register_comparison"]

#: The list of comparisons, in the run's report folder.
COMPARISONS_FILE = "comparisons.json"


def _read(report: Path) -> list[dict[str, Any]]:
    try:
        items = json.loads((report / COMPARISONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("page"), str)] if isinstance(items, list) else []


def register_comparison(run: str | os.PathLike[str], page: str | os.PathLike[str], *, title: str,
                        role: str) -> Path | None:
    """Add (or update) the comparison page ``page`` in the run's report list; None when the run has no report.

    ``title`` names the comparison ("B vs A"), ``role`` the run's part in it (``"A"``, ``"B"``).
    """
    report = RunLayout(Path(run)).report
    if not report.is_dir():
        return None
    target = str(Path(page).resolve())
    items = [i for i in _read(report) if i["page"] != target]
    items.append({"page": target, "title": title, "role": role})
    return atomic_write_text(report / COMPARISONS_FILE, json.dumps(items, indent=2) + "\n")


def comparison_links(report: str | os.PathLike[str]) -> list[dict[str, str]]:
    """``[{"href", "title", "role"}]`` of the listed comparisons whose page exists, relative to ``report``."""
    folder = Path(report)
    out = []
    for item in _read(folder):
        page = Path(item["page"])
        if page.is_file():
            href = quote(os.path.relpath(page, folder.resolve()).replace(os.sep, "/"))
            out.append({"href": href, "title": str(item.get("title", page.parent.name)),
                        "role": str(item.get("role", ""))})
    return out
