"""The README's tables reference is the schemas' own documentation (``cohort_sciseg.schema_doc``)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pyarrow as pa
import pytest

from cohort_sciseg.records import RUN_TABLE_SCHEMAS as TABLE_SCHEMAS
from cohort_sciseg.schema_doc import (
    BEGIN,
    END,
    WRITE_COMMAND,
    documented_tables,
    main,
    replace_block,
    table_markdown,
    tables_markdown,
    type_name,
)
from cohort_sciseg.schemas import LONGITUDINAL_TABLE_SCHEMAS

README = Path(__file__).resolve().parents[1] / "README.md"

#: Numeric columns without a unit, each unitless by nature (a count, an index, a fraction
#: whose scale is its definition, image intensities in the scanner's arbitrary units, or a
#: value whose unit is given by other columns of its row). A new numeric column must
#: either carry a unit in its field metadata or be added here with its reason.
UNITLESS_NUMERIC = {
    ("scans", "n_lesions"): "a count",
    ("scans", "attempt"): "a count",
    ("scans", "cord_dice"): "Dice, a fraction in [0, 1]",
    ("scans", "lesion_dice"): "Dice, a fraction in [0, 1]",
    ("lesions", "lesion_id"): "an identifier",
    ("lesions", "mean_intensity"): "the image's own (arbitrary) intensity scale",
    ("lesions", "std_intensity"): "the image's own (arbitrary) intensity scale",
    ("lesion_slices", "lesion_id"): "an identifier",
    ("metrics", "value"): "unit given by the row's metric and units columns",
    ("biomarkers", "n_lesions"): "a count",
    ("failures", "attempt"): "a count",
    ("lesion_tracks", "lesion_id"): "an identifier",
    ("lesion_tracks", "track_id"): "an identifier",
    ("lesion_tracks", "session_index"): "an index (0 = baseline)",
    ("lesion_changes", "track_id"): "an identifier",
    ("lesion_changes", "session_index_from"): "an index (0 = baseline)",
    ("lesion_changes", "session_index_to"): "an index (0 = baseline)",
    ("session_alignments", "iterations"): "a count",
}


def _readme_block() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1, f"README.md lost its {BEGIN} marker"
    assert text.count(END) == 1, f"README.md lost its {END} marker"
    return text.split(BEGIN)[1].split(END)[0].strip()


def _fields() -> list[tuple[str, pa.Field]]:
    return [(doc.name, f) for doc in documented_tables() for f in doc.schema]


def _meta(field: pa.Field) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}


def test_readme_tables_block_is_generated_from_the_schemas():
    assert _readme_block() == tables_markdown().strip(), (
        f"README.md's tables reference differs from the schemas: run `{WRITE_COMMAND}`"
    )


def test_every_table_the_run_writes_is_documented():
    names = [doc.name for doc in documented_tables()]
    assert names == [*TABLE_SCHEMAS, *LONGITUDINAL_TABLE_SCHEMAS, "discovered_scans"]
    block = _readme_block()
    for name in names:
        assert f"### `{name}`" in block


def test_every_field_has_a_description():
    missing = [f"{table}.{f.name}" for table, f in _fields() if not _meta(f).get("description", "").strip()]
    assert not missing, f"fields without a description (records.arrow_field doc=...): {missing}"


def test_numeric_fields_have_a_unit_unless_unitless_by_nature():
    numeric = [
        (table, f) for table, f in _fields() if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
    ]
    without = {(table, f.name) for table, f in numeric if not _meta(f).get("unit", "").strip()}
    assert without <= set(UNITLESS_NUMERIC), f"numeric fields without a unit: {sorted(without - set(UNITLESS_NUMERIC))}"
    # the allow-list stays exact: a field that gained a unit leaves it
    assert set(UNITLESS_NUMERIC) <= without, f"listed but now with a unit: {sorted(set(UNITLESS_NUMERIC) - without)}"


def test_non_numeric_fields_carry_no_unit():
    # text, flags, maps and lists of labels have no unit; a unit there is a mistake in the schema
    odd = [
        f"{table}.{f.name}"
        for table, f in _fields()
        if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)) and "unit" in _meta(f)
    ]
    assert not odd


def test_every_column_appears_once_in_its_table_with_unit_and_definition():
    for doc in documented_tables():
        md = table_markdown(doc.schema)
        rows = [line for line in md.splitlines() if line.startswith("| `")]
        assert len(rows) == len(doc.schema)
        for line, f in zip(rows, doc.schema, strict=True):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            meta = _meta(f)
            assert cells[0] == f"`{f.name}`"
            assert cells[2] == meta.get("unit", "")
            assert cells[3] == " ".join(meta["description"].split())


@pytest.mark.parametrize(
    ("typ", "name"),
    [
        (pa.string(), "string"),
        (pa.float64(), "float64"),
        (pa.int32(), "int32"),
        (pa.bool_(), "bool"),
        (pa.map_(pa.string(), pa.string()), "map<string, string>"),
        (pa.list_(pa.string()), "list<string>"),
        (pa.list_(pa.struct([("worker", pa.string()), ("n", pa.int32())])), "list<struct<worker: string, n: int32>>"),
    ],
)
def test_type_names(typ: pa.DataType, name: str):
    assert type_name(typ) == name


def test_non_nullable_columns_are_marked():
    md = table_markdown(pa.schema([pa.field("a", pa.string(), nullable=False, metadata={"description": "x"})]))
    assert "| `a` | string, *not null* |  | x |" in md


def test_pipes_in_descriptions_do_not_break_the_table():
    md = table_markdown(pa.schema([pa.field("a", pa.string(), metadata={"description": "x | y"})]))
    assert md.splitlines()[-1] == "| `a` | string |  | x \\| y |"


def test_replace_block_keeps_the_rest_of_the_file():
    text = f"intro\n{BEGIN}\nold\n{END}\nrest\n"
    assert replace_block(text, "new\n") == f"intro\n{BEGIN}\nnew\n{END}\nrest\n"


@pytest.mark.parametrize("text", ["no markers", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{BEGIN}\n{END}\n"])
def test_replace_block_refuses_missing_or_misplaced_markers(text: str):
    with pytest.raises(ValueError, match=re.escape(BEGIN)):
        replace_block(text, "x")


def test_main_writes_then_checks(tmp_path: Path):
    doc = tmp_path / "GUIDE.md"
    doc.write_text(f"# guide\n\n{BEGIN}\nstale\n{END}\n\nend\n", encoding="utf-8")
    out = io.StringIO()
    assert main(["--check", str(doc)], out) == 1
    assert WRITE_COMMAND in out.getvalue()
    assert main(["--write", str(doc)], out) == 0
    assert main(["--check", str(doc)], out) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# guide\n\n")
    assert text.endswith("\n\nend\n")
    assert "### `lesions`" in text
    assert "stale" not in text
    assert main(["--write", str(doc)], out) == 0
    assert out.getvalue().rstrip().endswith("already current")


def test_main_prints_the_block():
    out = io.StringIO()
    assert main([], out) == 0
    assert out.getvalue() == tables_markdown()
