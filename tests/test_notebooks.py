"""Static checks of the notebooks that nbval itself would not report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP")


def code_cells(path: Path) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_stand_alone_on_their_line(path):
    """nbval honours `# NBVAL_IGNORE_OUTPUT` only when nothing else is on the line: a marker
    followed by a reason is silently ignored and the cell's floats get compared."""
    for cell in code_cells(path):
        for line in "".join(cell["source"]).splitlines():
            if any(marker in line for marker in MARKERS):
                assert line.strip().lstrip("#").strip() in MARKERS, f"{path.name}: {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_outputs_are_complete_and_error_free(path):
    """nbval compares against the saved outputs: every code cell must have been executed."""
    cells = code_cells(path)
    assert all(cell["execution_count"] is not None for cell in cells), "unexecuted cells"
    errors = [out for cell in cells for out in cell["outputs"] if out["output_type"] == "error"]
    assert not errors, f"{path.name} was saved with an error"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell(path):
    tagged = [cell for cell in code_cells(path) if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
