"""The analysis notebooks (``notebooks/``): paired, stripped, and executed on a demo run.

One small demo run (the bundled model, 3 subjects per site) is made per test session
and shared by the pytest-xdist workers (the first worker to get the lock builds it).
Each notebook is executed top to bottom with nbclient in a kernel of this interpreter,
with ``COHORT_SCISEG_RUN`` pointing at the demo run; one is also exported to HTML with
the ``jupyter nbconvert`` command that the README gives. Those tests are ``slow`` (the
demo run takes 1-2 minutes); ``-m "slow or not slow"`` runs them, as CI does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("nbconvert")
from filelock import FileLock  # noqa: E402  (after the skips: an optional dependency of the tests)

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
#: Notebooks whose point is a figure: at least one PNG must come out of them.
FIGURE_NOTEBOOKS = ("02_segmentation_validation", "03_biomarkers", "04_clinical")
#: The demo of the tests: 3 subjects per site (10 scans) gives every validation table, with
#: the normality tests (they need n >= 8).
DEMO_ARGS = ("--no-progress", "--workers", "1", "--subjects-per-site", "3")
#: Seconds one notebook may take (they take a few on the demo run).
CELL_TIMEOUT_S = 120


def _build_demo(folder: Path) -> Path:
    """``cohort-sciseg demo -o folder`` in a child process; the run folder.

    A child process, not ``cli.main`` in this one: the CLI configures the root logger
    and routes Python warnings into logging, which would change the other tests of
    this worker.
    """
    run = folder / "derivatives"
    if (run / "validation" / "validation.json").is_file():
        return run
    cmd = [sys.executable, "-m", "cohort_sciseg.cli", "demo", "-o", str(folder), *DEMO_ARGS]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        pytest.fail(f"the demo run failed ({done.returncode}):\n{output}")
    return run


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The demo run folder (``.../derivatives``), built once per session for all workers."""
    if worker_id == "master":  # no xdist: this session's own temporary folder
        return _build_demo(tmp_path_factory.getbasetemp() / "notebook-demo")
    shared = tmp_path_factory.getbasetemp().parent  # the session's folder, above the workers' own
    with FileLock(str(shared / "notebook-demo.lock")):
        return _build_demo(shared / "notebook-demo")


@pytest.fixture(scope="session")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for ``JUPYTER_PATH`` with a ``python3`` kernelspec that runs this interpreter.

    A user's own ``python3`` kernelspec (``~/.local/share/jupyter/kernels``) may name
    another Python; ``JUPYTER_PATH`` comes first in Jupyter's search path.
    """
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    return folder


@pytest.fixture
def notebook_env(
    demo_run: Path, kernel_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The environment of the kernels: the demo run, this interpreter, the inline plots."""
    paths = [str(kernel_path), os.environ.get("JUPYTER_PATH", "")]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setenv("COHORT_SCISEG_RUN", str(demo_run))
    # a CI's MPLBACKEND=Agg would keep the figures out of the outputs
    monkeypatch.delenv("MPLBACKEND", raising=False)
    # the kernel's debugger warns about frozen modules on stderr
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return dict(os.environ)


def _read_pair(name: str) -> tuple[object, object]:
    script = jupytext.read(NOTEBOOK_DIR / f"{name}.py")
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    return script, notebook


def _cells(nb: object) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]  # type: ignore[attr-defined]


def test_there_are_six_notebooks() -> None:
    assert NOTEBOOKS == [
        "01_cohort",
        "02_segmentation_validation",
        "03_biomarkers",
        "04_clinical",
        "05_queries",
        "06_qc_worklist",
    ]
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_paired_and_stripped(name: str) -> None:
    """The ``.ipynb`` holds the cells of the ``.py`` (``jupytext --sync``) and no outputs."""
    script, notebook = _read_pair(name)
    assert _cells(notebook) == _cells(script), (
        f"notebooks/{name}.ipynb differs from notebooks/{name}.py: run "
        f"`jupytext --sync notebooks/{name}.py` (or --to ipynb) and strip the outputs"
    )
    for cell in notebook.cells:  # type: ignore[attr-defined]
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}.ipynb stores outputs: clear them before committing"
            assert cell.execution_count is None, f"{name}.ipynb stores execution counts"
    pairing = notebook.metadata.get("jupytext", {}).get("formats")  # type: ignore[attr-defined]
    assert pairing == "ipynb,py:percent"
    first = notebook.cells[0]  # type: ignore[attr-defined]
    assert first.cell_type == "markdown"
    assert "COHORT_SCISEG_RUN" in first.source, "the first cell says how to set the run folder"


@pytest.mark.slow  # with the demo run it needs: 2-2.5 min on 2 cores
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name: str, notebook_env: dict[str, str]) -> None:
    """Every cell runs on the demo run; the figure notebooks show figures."""
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # the folder Jupyter runs it in
    )
    client.execute(env=notebook_env)  # a failing cell raises CellExecutionError with its traceback
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors
    if name in FIGURE_NOTEBOOKS:
        pngs = [o for o in outputs if "image/png" in o.get("data", {})]
        assert pngs, f"{name} shows no figure"


@pytest.mark.slow
def test_readme_command_exports_html(notebook_env: dict[str, str], tmp_path: Path) -> None:
    """The documented export: ``jupyter nbconvert --to html --execute NB --output-dir DIR``."""
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter)] if jupyter.is_file() else [sys.executable, "-m", "jupyter"]
    cmd += ["nbconvert", "--to", "html", "--execute", "notebooks/01_cohort.ipynb"]
    cmd += ["--output-dir", str(tmp_path)]
    done = subprocess.run(
        cmd, cwd=REPO, env=notebook_env, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    html = tmp_path / "01_cohort.html"
    assert html.is_file()
    text = html.read_text(encoding="utf-8")
    assert "Table 1" in text
    assert "Traceback" not in text
    assert not (REPO / "notebooks" / "01_cohort.html").exists()
