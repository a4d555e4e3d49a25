"""The README's commands, .ci/run, the package metadata and the code checks agree."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _ci_test_command() -> str:
    text = (REPO / ".ci" / "run").read_text()
    m = re.search(r"# README-TEST-COMMAND-BEGIN\n(.*?)\n# README-TEST-COMMAND-END", text, re.S)
    assert m, ".ci/run lost its README-TEST-COMMAND markers"
    return m.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    assert _ci_test_command() in [b.strip() for b in blocks]


def test_readme_main_command_runs_demo():
    readme = (REPO / "README.md").read_text()
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)\n```", readme, re.S)]
    assert any(b.endswith("cohort-sciseg demo") and "torch==2.13.0" in b for b in blocks)


def test_pyproject_core_dependencies():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in meta["project"]["dependencies"]}
    card = {"dask", "distributed", "nnunetv2", "torch", "nibabel", "pandas", "scipy", "statsmodels", "pyarrow"}
    assert card <= deps
    assert meta["project"]["scripts"]["cohort-sciseg"] == "cohort_sciseg.cli:main"
    extras = meta["project"]["optional-dependencies"]
    assert {"dask-jobqueue", "dask-kubernetes"} <= {re.split(r"[<>=]", d)[0] for d in extras["cluster"]}


def _tool(name: str) -> str:
    exe = BIN / name
    if not exe.exists():
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
        return found
    return str(exe)


@pytest.mark.slow
def test_ruff_clean():
    r = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_mypy_clean():
    r = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_layers():
    r = subprocess.run([_tool("lint-imports")], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_importing_the_package_has_no_side_effects():
    code = (
        "import logging, sys; import cohort_sciseg, cohort_sciseg.io, cohort_sciseg.records, cohort_sciseg.cli;"
        "import cohort_sciseg.batch.runner, cohort_sciseg.segment.manifest;"
        "assert not logging.getLogger().handlers;"
        "assert 'torch' not in sys.modules and 'dask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_runs_as_a_module_and_imports_no_torch():
    """`python -m cohort_sciseg.cli` (benchmarks/gpu/kit.py) works; the parser and commands load no torch/dask."""
    r = subprocess.run([sys.executable, "-m", "cohort_sciseg.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("cohort-sciseg ")
    code = (
        "import sys; from cohort_sciseg.cli import main, parser, commands;"
        "from cohort_sciseg.cli import _command, _parser, _segmenter_spec;"
        "parser.command_from_namespace(parser.build_parser().parse_args(['segment', 'x.nii.gz']));"
        "assert 'torch' not in sys.modules and 'dask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_modules_stay_small():
    """The command line is a package of small modules (house style: a module under ~600 lines)."""
    sizes = {p.relative_to(REPO).as_posix(): len(p.read_text().splitlines())
             for p in (REPO / "cohort_sciseg" / "cli").rglob("*.py")}
    assert sizes
    assert {k: v for k, v in sizes.items() if v >= 600} == {}
