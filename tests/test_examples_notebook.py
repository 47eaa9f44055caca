"""examples/quickstart.ipynb runs top to bottom in a fresh kernel (nbclient + ipykernel, the
dev extra), shows its figures inline and keeps the notebook's own matplotlib backend."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs_and_shows_inline_figures(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # CellExecutionError on the first cell that raises
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    figures = [o for o in images if "Figure" in o["data"].get("text/plain", "")]
    assert len(images) >= 3 and figures  # the study's PNGs and the notebook's own figure
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "backend: module://matplotlib_inline.backend_inline" in text
    assert (tmp_path / "runs" / "quickstart" / "study.sqlite").is_file()
