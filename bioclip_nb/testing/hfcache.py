"""Write files into a Hugging Face hub cache, laid out exactly as huggingface_hub expects.

``<cache>/<models|datasets>--org--name/refs/main`` holds a commit hash and
``snapshots/<commit>/<path>`` the files, so ``hf_hub_download`` with ``HF_HUB_OFFLINE=1``
finds them as it would after a real download.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path


def put_in_hf_cache(cache: Path, repo_id: str, files: dict[str, bytes | Path], repo_type: str = "model") -> Path:
    """Add ``files`` (repo path -> bytes or a file to copy) to ``repo_id`` in the cache; return the snapshot dir."""
    folder = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = folder / "snapshots" / commit
    for rel, content in files.items():
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return snapshot
