"""Every tutorial runs top to bottom on the demo atlas, with its parameters cell overridden."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TUTORIALS = sorted(p.name for p in NOTEBOOKS.glob("0*.ipynb"))


#: What running a notebook may create in the checkout without it counting as a write.
IGNORED = {".git", ".venv", "__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".ruff_cache"}


def tree_state() -> list[tuple[str, int, int]]:
    """Every file of the checkout (its path, size and modification time), in or out of git."""
    out = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in IGNORED and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            st = path.stat()
            out.append((path.relative_to(ROOT).as_posix(), st.st_size, st.st_mtime_ns))
    return sorted(out)


def _params(name: str, demo: Path, tmp: Path) -> str:
    if name.startswith("03"):
        return f"source = None\nout = {str(tmp / 'atlas')!r}\nmodel = 'bioclip-nb/pixel-768'"
    if name.startswith("04"):
        return f"folder = None\natlas = {str(demo)!r}\noutput = None\ntop_n = 5\npredict_within = None"   # the default output
    if name.startswith("02"):
        return f"atlas = {str(demo)!r}\nsample = 40"
    if name.startswith("00"):
        return f"atlas = {str(demo)!r}\nphoto = None"
    if name.startswith("05"):
        return f"atlas = {str(demo)!r}\nn_queries = 100"
    return f"atlas = {str(demo)!r}\nquery = None\nserver = None"


def test_there_are_six_tutorials():
    assert TUTORIALS == ["00_tour_of_the_dashboard.ipynb", "01_first_search.ipynb", "02_how_vector_search_works.ipynb",
                         "03_build_your_own_atlas.ipynb", "04_search_a_folder.ipynb", "05_build_an_index_yourself.ipynb"]


@pytest.mark.parametrize("name", [*TUTORIALS, "dashboard.ipynb"])
def test_stored_without_outputs_and_with_parameters(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1


@pytest.mark.notebook
@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_runs(name, demo_atlas, tmp_path):
    """Run as a user would, from the notebooks folder, and leave the checkout as it was."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = _params(name, demo_atlas, tmp_path)
    before = tree_state()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert tree_state() == before, "the notebook wrote into the repository"
    if name.startswith("04"):
        import pandas as pd
        written = Path(os.environ["BIOCLIP_NB_HOME"]) / "results" / "folder-results.csv"
        table = pd.read_csv(written)
        assert len(table) >= 50 and table["top_similarity"].between(0, 1).all()
        assert table["atlas_fingerprint"].nunique() == 1 and table["query_input"].tolist() == table["file"].tolist()
        assert str(written) in "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.notebook
def test_dashboard_notebook_runs(demo_atlas, tmp_path):
    nb = nbformat.read(NOTEBOOKS / "dashboard.ipynb", as_version=4)
    nb.cells[0].source = f"atlas = {str(demo_atlas)!r}\nserver = None"
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    out = nb.cells[1].outputs
    assert out and "application/vnd.jupyter.widget-view+json" in out[0]["data"]


@pytest.mark.notebook
def test_the_first_tutorial_runs_against_a_server(demo_atlas, tmp_path):
    """The same tutorial with ``server`` set: its kernel never loads the model (torch is never imported)."""
    from helpers.servers import server_process
    nb = nbformat.read(NOTEBOOKS / "01_first_search.ipynb", as_version=4)
    with server_process(demo_atlas, tmp_path / "home") as (_, record):
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source = f"atlas = None\nquery = None\nserver = {record.url!r}"
        nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sorted(m for m in ('torch', 'open_clip') if m in sys.modules))"))
        env_home = os.environ["BIOCLIP_NB_HOME"]
        os.environ["BIOCLIP_NB_HOME"] = str(tmp_path / "home")        # the kernel finds the token in server.json
        try:
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        finally:
            os.environ["BIOCLIP_NB_HOME"] = env_home
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    assert nb.cells[-1].outputs[0]["text"].strip() == "[]"


@pytest.mark.parametrize("name", TUTORIALS)
def test_every_tutorial_is_a_lesson(name):
    """Objectives and time at the top, a prediction to make, two or more self-checking
    exercises each with a folded worked answer, and a recap."""
    from bioclip_nb import teach
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    text = ["".join(c.source) for c in nb.cells]
    assert "In this lesson you will" in text[0] and "minutes" in text[0]
    assert any("Predict" in t for t in text[1:])
    checks = re.findall(r'teach\.check\("([0-9]{2}-[a-z-]+)"', "\n".join(text))
    assert len(set(checks)) >= 2 and set(checks) <= set(teach.EXERCISES)
    assert sum("<details><summary>Worked answer</summary>" in t for t in text) >= len(set(checks))
    assert any(t.lstrip().startswith("## Recap") or "\n## Recap" in t for t in text)
