"""The reference of a run's tables, generated from their Arrow schemas (README, "The tables").

Every column is documented once, in the field metadata of its table's schema
(:func:`cohort_sciseg.records.arrow_field`: ``description`` and ``unit``). This
module turns the schemas into Markdown, one subsection per table with a
``| column | type | unit | definition |`` table, so that the user guide cannot
drift from the code: ``tests/test_schema_doc.py`` fails when the README's block
differs from :func:`tables_markdown`.

The README holds the block between :data:`BEGIN` and :data:`END`; rewrite it with::

    python -m cohort_sciseg.schema_doc --write README.md

``python -m cohort_sciseg.schema_doc`` prints the block; ``--check README.md``
exits with status 1 when the README's block is stale.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import pyarrow as pa

from cohort_sciseg.io import RunLayout
from cohort_sciseg.records import RUN_TABLE_SCHEMAS as TABLE_SCHEMAS
from cohort_sciseg.records import SCANS_SCHEMA
from cohort_sciseg.schemas import LONGITUDINAL_TABLE_SCHEMAS

__all__ = [
    "BEGIN",
    "END",
    "TableDoc",
    "documented_tables",
    "main",
    "replace_block",
    "table_markdown",
    "tables_markdown",
    "type_name",
    "write_tables_block",
]

#: Markers of the generated block in the README.
BEGIN = "<!-- TABLES-BEGIN -->"
END = "<!-- TABLES-END -->"

#: The command that rewrites the README's block (quoted by the tests when it is stale).
WRITE_COMMAND = "python -m cohort_sciseg.schema_doc --write README.md"

#: What one row of each table is, and who else writes it. A run table without an
#: entry here is refused by :func:`documented_tables` (add its sentence).
_SUMMARIES = {
    "scans": "One row per scan of the run folder (processed by this run or an earlier one: "
    "`run_id`), done or failed: where its masks are, the paper's per-scan biomarkers, "
    "plausibility flags, Dice against the manual masks and how the scan was processed.",
    "lesions": "One row per predicted lesion, with SCT `sct_analyze_lesion`'s measures "
    "(also written by `cohort-sciseg analyze-lesion` as `OUT.parquet`).",
    "lesion_slices": "One row per lesion and sagittal slice: SCT's per-sagittal-slice minimum "
    "tissue bridges (also written by `analyze-lesion` as `OUT_slices.parquet`).",
    "metrics": "Long table, one row per scan x method x split x structure x metric, for the "
    "scans with manual masks (also written by `cohort-sciseg validate` as `metrics.parquet`).",
    "biomarkers": "The paper's per-scan lesion biomarkers, one row for the manual masks and one "
    "for the prediction of each scan with manual masks (also written by `validate`).",
    "failures": "One row per problem: a scan that failed (`stage` says where), a file that "
    "discovery could not use (stage `discover`) or manual masks that cannot serve as a "
    "reference (stage `validation`: the scan itself is done). Also written by `discover` and "
    "`validate` as `failures.parquet`.",
    "lesion_tracks": "Subjects with several sessions of the same acquisition only (the longitudinal "
    "step, `cohort-sciseg longitudinal`): one row per lesion per session, with its track (the same "
    "lesion across sessions, matched by overlap in the baseline space), its event and its measures.",
    "lesion_changes": "Longitudinal step: one row per event and interval between consecutive aligned "
    "sessions (a track that persists, starts, ends, splits or merges), each measure at both ends, the "
    "change and the change per year.",
    "session_alignments": "Longitudinal step: one row per session of a subject with several sessions: "
    "the rigid transform to the subject's baseline session, the cord Dice after alignment and whether "
    "it passed the check (lesions of a session that did not are not tracked).",
}

_DISCOVERED_SUMMARY = (
    "Every scan discovery found for the run, one row per T2w image, with its sidecar and "
    "`participants.tsv` row (the same table as `cohort-sciseg discover -o scans.parquet`). "
    "One file, not partitioned: its `site` column is in the file."
)

_INTRO = f"""\
*Generated from the Arrow schemas in `cohort_sciseg/records.py` by
`{WRITE_COMMAND}`: edit the schemas, not this block.*

Units: `mm`, `mm3`, `s` (seconds), `T` (tesla), `%`, `voxel` (a voxel count or a voxel
index), `1` (a dimensionless ratio). An empty unit means text, a flag, an identifier, a
count or a value whose unit depends on the row (`metrics.value`: read `metric` and
`units`). *not null*: the column always holds a value.

The tables under `tables/<table>/` are hive-partitioned: one folder `site=<site>` per site.
The `site` column lives in the folder name, not in the files; pandas, pyarrow, DuckDB and
polars add it when they read the table's folder (`pandas.read_parquet("OUT/tables/lesions")`;
pandas makes it a category). A table without rows has no folder.
"""


@dataclass(frozen=True, slots=True)
class TableDoc:
    """One documented table.

    Attributes
    ----------
    name
        The table's name (``tables/<name>/`` in a run folder).
    location
        Where a run writes it, relative to the run folder.
    summary
        What one row is, in a sentence or two (Markdown).
    schema
        Its Arrow schema; each field's metadata holds ``description`` and, where the
        column has one, ``unit``.
    """

    name: str
    location: str
    summary: str
    schema: pa.Schema


def documented_tables() -> tuple[TableDoc, ...]:
    """The tables of a run folder, in the order of the guide.

    The partitioned tables are those of :data:`cohort_sciseg.records.RUN_TABLE_SCHEMAS`
    (what the run compacts) and :data:`cohort_sciseg.schemas.LONGITUDINAL_TABLE_SCHEMAS`
    (the longitudinal step), then ``discovered_scans.parquet``.

    Raises
    ------
    KeyError
        A run table has no summary sentence here.
    """
    layout = RunLayout("OUT")
    docs = []
    for name, schema in {**TABLE_SCHEMAS, **LONGITUDINAL_TABLE_SCHEMAS}.items():
        if name not in _SUMMARIES:
            msg = f"run table {name!r} has no summary in cohort_sciseg.schema_doc._SUMMARIES: add one"
            raise KeyError(msg)
        where = f"{layout.table(name).relative_to(layout.root).as_posix()}/"
        docs.append(TableDoc(name, where, _SUMMARIES[name], schema))
    discovered = layout.discovered_scans.relative_to(layout.root).as_posix()
    docs.append(TableDoc(RunLayout.DISCOVERED_SCANS, discovered, _DISCOVERED_SUMMARY, SCANS_SCHEMA))
    return tuple(docs)


def type_name(typ: pa.DataType) -> str:
    """A short, reader-friendly name of an Arrow type (``float64``, ``list<string>``, ...)."""
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "string"
    if pa.types.is_boolean(typ):
        return "bool"
    if pa.types.is_floating(typ):
        return f"float{typ.bit_width}"
    if pa.types.is_map(typ):
        return f"map<{type_name(typ.key_type)}, {type_name(typ.item_type)}>"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return f"list<{type_name(typ.value_type)}>"
    if pa.types.is_struct(typ):
        fields = (typ.field(i) for i in range(typ.num_fields))
        return "struct<" + ", ".join(f"{f.name}: {type_name(f.type)}" for f in fields) + ">"
    return str(typ)


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def _meta(field: pa.Field) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}


def table_markdown(schema: pa.Schema) -> str:
    """The ``| column | type | unit | definition |`` Markdown table of ``schema``."""
    lines = ["| column | type | unit | definition |", "|---|---|---|---|"]
    for f in schema:
        meta = _meta(f)
        typ = type_name(f.type) + ("" if f.nullable else ", *not null*")
        lines.append(
            f"| `{f.name}` | {typ} | {_cell(meta.get('unit', ''))} | {_cell(meta.get('description', ''))} |"
        )
    return "\n".join(lines) + "\n"


def tables_markdown() -> str:
    """The README's tables reference: an introduction, then one subsection per table."""
    parts = [_INTRO]
    for doc in documented_tables():
        parts.append(f"### `{doc.name}`\n\n`{doc.location}`. {doc.summary}\n\n{table_markdown(doc.schema)}")
    return "\n".join(parts)


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced by ``block``.

    Raises
    ------
    ValueError
        The markers are missing, repeated or out of order.
    """
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        msg = f"expected one {BEGIN} line followed by one {END} line; add them where the tables go"
        raise ValueError(msg)
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block.strip()}\n{END}{tail}"


def write_tables_block(path: str | os.PathLike[str]) -> bool:
    """Rewrite the block of the Markdown file ``path``; whether it changed."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    new = replace_block(text, tables_markdown())
    if new == text:
        return False
    p.write_text(new, encoding="utf-8")
    return True


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """``python -m cohort_sciseg.schema_doc [--write FILE | --check FILE]``; the exit status."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m cohort_sciseg.schema_doc",
        description="The Markdown reference of a run's tables, generated from their Arrow schemas.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", type=Path, metavar="FILE", help=f"rewrite the block between {BEGIN} and {END}")
    group.add_argument("--check", type=Path, metavar="FILE", help="exit 1 when the block of FILE is stale")
    ns = parser.parse_args(argv)
    if ns.write is not None:
        changed = write_tables_block(ns.write)
        out.write(f"{ns.write}: tables block {'rewritten' if changed else 'already current'}\n")
        return 0
    if ns.check is not None:
        text = ns.check.read_text(encoding="utf-8")
        if replace_block(text, tables_markdown()) != text:
            out.write(f"{ns.check}: the tables block is stale; run `{WRITE_COMMAND}`\n")
            return 1
        out.write(f"{ns.check}: the tables block is current\n")
        return 0
    out.write(tables_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
