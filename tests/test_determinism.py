"""Re-running a notebook gives the same compared outputs: a short notebook that trains the way
the project's notebooks do (seeded, recorded in MLflow, its numbers taken from what `fit`
returned) is executed twice in fresh kernels, and every output nbval would compare is identical
after `notebooks/sanitize.cfg`."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO_ROOT = Path(__file__).resolve().parents[1]
IGNORE = "# NBVAL_IGNORE_OUTPUT"
COMPARED = ("text/plain", "text/markdown", "text/html")  # nbval skips images by default

CELLS = [
    """\
import polars as pl
import torch
from IPython.display import Markdown, display

from utilities import DotProductMLP, FreshPairLoader, fit, make_vector_pairs, seed_everything

seed_everything(0)
train = FreshPairLoader(4, batches_per_epoch=16, batch_size=128, seed=0)
val = make_vector_pairs(512, 4, generator=torch.Generator().manual_seed(1))""",
    """\
result = fit(
    DotProductMLP(4, [32, 32]), train, val, epochs=3, lr=3e-3, experiment="determinism",
    accelerator="cpu",
)
print(result.run_id)  # differs per run: sanitize.cfg replaces it""",
    """\
with pl.Config(float_precision=10, tbl_rows=20):
    print(result.history)""",
    """\
final = result.metrics["val_loss"]
display(Markdown(f"**Conclusion.** validation MSE {final:.10f}"))
final""",
    f"""\
{IGNORE}
import os, time
print(os.getpid(), time.time_ns())""",
]


def execute_notebook(nb: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel started in `folder`."""
    return NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(folder)}}).execute()


def load_sanitizers() -> list[tuple[re.Pattern, str]]:
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "notebooks" / "sanitize.cfg")
    sections = [config[name] for name in config.sections()]
    return [(re.compile(section["regex"]), section["replace"]) for section in sections]


def compared_outputs(nb: nbformat.NotebookNode, ignored: bool = False) -> list[list[str]]:
    """Per code cell (those with the ignore marker when `ignored`), its sanitised output texts."""
    sanitizers = load_sanitizers()
    cells = [c for c in nb.cells if c.cell_type == "code" and (IGNORE in c.source) == ignored]
    texts = []
    for cell in cells:
        outputs = [out.get("text", "") for out in cell.outputs if out.output_type == "stream"]
        data = [out.data for out in cell.outputs if "data" in out]
        outputs += [item[key] for item in data for key in COMPARED if key in item]
        for pattern, replacement in sanitizers:
            outputs = [pattern.sub(replacement, text) for text in outputs]
        texts.append(outputs)
    return texts


def test_two_runs_give_the_same_compared_outputs(tmp_path):
    notebook = new_notebook(cells=[new_markdown_cell("# Determinism")])
    notebook.cells += [new_code_cell(source) for source in CELLS]
    first, second = (execute_notebook(nbformat.from_dict(notebook), tmp_path) for _ in range(2))

    errors = [o for c in first.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    assert compared_outputs(first) == compared_outputs(second)
    run_ids = [cell.cells[2].outputs[0].text.strip() for cell in (first, second)]
    assert run_ids[0] != run_ids[1]  # two real executions, two MLflow runs
    assert compared_outputs(first)[1] == ["RUN-ID\n"]
    headline = re.compile(r"\*\*Conclusion.\*\* validation MSE \d\.\d{10}")
    assert any(headline.fullmatch(text) for text in compared_outputs(first)[3])
    history = compared_outputs(first)[2][0]  # the loss history, compared
    assert [line.split()[1] for line in history.splitlines() if line[2:3].isdigit()] == [
        "1",
        "2",
        "3",
    ]
    assert compared_outputs(first, ignored=True) != compared_outputs(second, ignored=True)
