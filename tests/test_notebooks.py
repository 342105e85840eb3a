"""Execute every notebook in ``notebooks/`` from top to bottom. A test fails if any cell raises.

Small sizes
-----------
The notebooks are run at a reduced size. A notebook whose **first code cell is tagged
``parameters``** gets a new cell inserted right after that cell. The new cell holds the source
``SMALL_OVERRIDES[<file name>]`` (for example ``N = 120``) and is tagged
``injected-parameters``, so the rest of the notebook runs unchanged with the smaller values.
Notebooks without an entry run as written. When you add a notebook whose default sizes are
slow, add an entry here. ``test_small_overrides_are_usable`` checks that every entry names an
existing notebook with a ``parameters`` cell. The notebooks are executed in memory only, and
no file is written.

Kernel
------
The notebooks run on ipykernel in the interpreter that runs pytest
(``sys.executable -m ipykernel_launcher``), whatever kernelspecs exist in user or system
Jupyter directories. The kernel manager gets a ``KernelSpecManager`` with no kernel
directories, which falls back to ipykernel's built-in ``python3`` spec for the current
interpreter. ``.venv/bin/python -m pytest`` therefore uses the venv after ``make setup``,
and no ``jupyter kernelspec install`` is needed. ``test_kernel_runs_this_interpreter``
checks this.

Run only these tests with ``pytest -m notebook``, or skip them with ``-m "not notebook"``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from traitlets import default  # noqa: E402

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell

# notebook file name -> source of the cell inserted after its ``parameters`` cell
SMALL_OVERRIDES = {
    "01_semi_unbalanced_basics.ipynb": "N = 120",
    "02_denoising_corrupted_patch_model.ipynb": "SMALL = True",
    "03_superresolution_with_reference.ipynb": "SIZE, STEPS, N_REF, RHOS = 32, 3, 150, [0.01, 1.0]",
    "04_reproduce_table1.ipynb": "SMALL = True",
}


class ThisInterpreterKernelManager(AsyncKernelManager):
    """A kernel manager that knows only ipykernel's built-in spec, which runs ``sys.executable``."""

    @default("kernel_spec_manager")
    def _default_kernel_spec_manager(self):
        return KernelSpecManager(kernel_dirs=[])


def first_code_cell(nb):
    return next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)


def with_small_overrides(nb, name: str):
    """Copy of ``nb`` with the override cell for ``name`` inserted after its parameters cell."""
    nb = nbformat.from_dict(nb)  # deep copy
    src = SMALL_OVERRIDES.get(name)
    if src is None:
        return nb
    i = first_code_cell(nb)
    if i is None or "parameters" not in nb.cells[i].metadata.get("tags", []):
        raise AssertionError(
            f"{name} has an entry in SMALL_OVERRIDES, but its first code cell is not tagged 'parameters'"
        )
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(i + 1, cell)
    return nb


def execute(nb, cwd: Path):
    """Run ``nb`` in place on a fresh kernel of this interpreter. Raises if a cell raises."""
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        kernel_manager_class=ThisInterpreterKernelManager,
        timeout=CELL_TIMEOUT,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return nb


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    nb = with_small_overrides(nbformat.read(path, as_version=4), path.name)
    execute(nb, cwd=path.parent)


@pytest.mark.notebook
def test_kernel_runs_this_interpreter(tmp_path):
    src = "import sys; print(sys.executable); print(sys.prefix)"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src)])
    execute(nb, cwd=tmp_path)
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs).split()
    assert printed == [sys.executable, sys.prefix]


def test_small_overrides_are_usable():
    names = {p.name for p in NOTEBOOKS}
    for name in SMALL_OVERRIDES:
        assert name in names, f"SMALL_OVERRIDES names {name}, which is not in {NOTEBOOK_DIR}"
        with_small_overrides(nbformat.read(NOTEBOOK_DIR / name, as_version=4), name)
