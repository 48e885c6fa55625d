"""The package's shape: one place for each fact, no import cycle, a cheap ``import bioclip_nb``."""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

import bioclip_nb
from bioclip_nb import index as ivf
from bioclip_nb import layout, results
from bioclip_nb.names import clean, scientific_name

PACKAGE = Path(bioclip_nb.__file__).parent
HEAVY = ("faiss", "duckdb", "torch", "pandas", "open_clip", "bioclip", "ipywidgets", "requests")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every bioclip_nb module ``path`` imports, at any depth of the file (function-level too)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names} & modules
            out.update(submodules)           # `from . import writer` imports the submodule ...
            if target in modules and len(submodules) < len(node.names):
                out.add(target)              # ... anything else comes from the package itself
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    files = list(PACKAGE.rglob("*.py"))
    modules = {_module_name(p) for p in files}
    return {_module_name(p): _imports(p, modules) for p in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 20
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_hidden_cycle():
    # what the model <-> pixel cycle looked like: one import inside a function
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_layout_is_a_leaf():
    assert import_graph()["bioclip_nb.layout"] == set()


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module's code (docstrings, which talk about facts, left out)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


@pytest.mark.parametrize("fact", [layout.BIOCLIP2, layout.PIXEL_MODEL, "index.index", "metadata.duckdb", "atlas.json",
                                  "vectors.npy", "https://www.gbif.org/occurrence/"])
def test_each_fact_is_defined_in_one_module(fact):
    holders = [p.relative_to(PACKAGE).as_posix() for p in sorted(PACKAGE.rglob("*.py"))
               if any(fact in s for s in _code_strings(p))]
    assert holders == ["layout.py"], holders


def test_a_model_is_called_by_its_name_and_an_unknown_one_by_its_id():
    assert layout.display_name(layout.BIOCLIP2) == "BioCLIP 2"
    assert layout.display_name("someone/else") == "someone/else"


def test_scope_and_rank_parse_forgive_case_and_space_and_name_the_choices():
    assert layout.Scope.parse(" INat ") is layout.Scope.INAT and layout.Rank.parse("Class") is layout.Rank.CLASS
    with pytest.raises(ValueError, match="unknown scope 'zoo': use one of all, url, inat, training"):
        layout.Scope.parse("zoo")
    with pytest.raises(ValueError, match="unknown rank 'tribe'"):
        layout.Rank.parse("tribe")


@pytest.mark.parametrize("value, expected", [
    (None, None), (float("nan"), None), (np.float32("nan"), None), (pd.NA, None), ("", None), ("  ", None),
    (" Aves ", "Aves"), ("None", "None"), (0, "0"), ("Mésange", "Mésange"),
])
def test_clean(value, expected):
    assert clean(value) == expected


@pytest.mark.parametrize("genus, epithet, expected", [
    ("Vulpes", "vulpes", "Vulpes vulpes"), ("Vulpes", None, "Vulpes"), ("Vulpes", " ", "Vulpes"),
    (None, "vulpes", None), (float("nan"), "vulpes", None), (" Parus ", "major ", "Parus major"),
])
def test_scientific_name(genus, epithet, expected):
    assert scientific_name(genus, epithet) == expected


def test_list_ids_reads_each_cell():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    index = faiss.index_factory(16, "IVF8,Flat")
    index.train(x)
    index.add(x)
    seen = np.concatenate([ivf.list_ids(index, c) for c in range(8)])
    assert sorted(seen.tolist()) == list(range(2000))
    assert len(ivf.list_ids(index, 0, limit=3)) == min(3, index.invlists.list_size(0))
    with pytest.raises(ValueError, match="flat index"):
        ivf.list_ids(faiss.IndexFlatL2(16), 0)


def test_one_csv_format_for_hits():
    hits = pd.DataFrame([{"rank": 1, "id": 7, "distance": 0.2, "similarity": 0.9, "genus": "Parus", "species": "major",
                          "publisher": "iNaturalist.org", "source_dataset": "gbif",
                          "occurrence_url": "https://www.gbif.org/occurrence/1", "url": "javascript:alert(1)",
                          "extra": "kept"}])
    text = results.to_csv(hits[["extra", "url", "species", "genus", "similarity", "distance", "id", "rank",
                                "publisher", "source_dataset", "occurrence_url"]])
    header = text.splitlines()[0].split(",")
    assert header[:4] == ["rank", "id", "distance", "similarity"] and header[-2:] == ["extra", "attribution"]
    assert "Parus major: image published by iNaturalist.org via GBIF (https://www.gbif.org/occurrence/1)" in text


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_help_load_nothing_heavy():
    probe = ("import sys, json, contextlib, io\n"
             "import bioclip_nb\n"
             "from bioclip_nb.commands.cli import main\n"
             "for argv in (['--help'], ['search', '--help'], ['build', '--help']):\n"
             "    with contextlib.redirect_stdout(io.StringIO()):\n"
             "        try: main(argv)\n"
             "        except SystemExit: pass\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert _run(probe) == []


def test_public_names_resolve_lazily():
    probe = ("import sys, json\n"
             "from bioclip_nb import Atlas, load_encoder, load_upload, ImageFetcher, Scope, Rank\n"
             "from bioclip_nb.dashboard import Dashboard\n"
             "print(json.dumps([Atlas.__name__, load_encoder.__name__, load_upload.__name__, ImageFetcher.__name__]))")
    assert _run(probe) == ["Atlas", "load_encoder", "load_upload", "ImageFetcher"]
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        bioclip_nb.nothing  # noqa: B018


def test_concurrent_cache_writes_never_mix(tmp_path):
    """Two kernels writing the same cache entry at once: each write lands whole (no shared
    temporary file), and nothing is left behind."""
    import threading

    from bioclip_nb.cache import write_quietly
    target = tmp_path / "entry.json"
    payloads = [bytes([65 + k]) * 2_000_000 for k in range(8)]
    done = []
    threads = [threading.Thread(target=lambda p=p: done.append(write_quietly(target, p))) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done == [True] * len(payloads)           # no writer lost its file to another's rename
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["entry.json"]


_SEARCH_DEFAULT = re.compile(r"\b(nprobe|top_n|NPROBE|TOP_N)\b[^\n]*\b(16|1000)\b|\bmin\s*\(\s*16\b")


def _code_lines(source: str) -> list[str]:
    """``source``'s lines with strings and comments removed (what the code itself writes)."""
    lines: dict[int, list[str]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.STRING, tokenize.COMMENT):
            lines.setdefault(tok.start[0], []).append(tok.string)
    return [" ".join(parts) for _, parts in sorted(lines.items())]


def _default_writers(paths) -> list[str]:
    found = []
    for path in paths:
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        else:
            sources = [path.read_text()]
        found += [f"{path.name}: {line}" for src in sources for line in _code_lines(src) if _SEARCH_DEFAULT.search(line)]
    return found


def test_search_defaults_and_limits_are_written_once():
    """The depth (16) and the Top N limit (1000) live in ``limits``; everything else reads them,
    through ``request.SearchRequest`` or by name."""
    notebooks = sorted((PACKAGE.parent / "notebooks").glob("*.ipynb"))
    writers = _default_writers([p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "limits.py"] + notebooks)
    assert writers == []
    # the scan sees a default written again, in code or in a tutorial
    assert _default_writers([_scratch("hits = atlas.search(q, nprobe = 16)\n")]) != []
    assert _default_writers([_scratch("n = min(16, atlas.nlist)  # the default\n")]) != []
    assert _default_writers([_scratch('"""nprobe 16 is the default"""\n')]) == []


def _scratch(code: str) -> Path:
    import tempfile
    path = Path(tempfile.mkdtemp()) / "scratch.py"
    path.write_text(code)
    return path


def test_the_top_level_stays_small():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 16, top
