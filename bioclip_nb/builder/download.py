"""Fetch the published artifacts (``imageomics/bioclip-image-search-lite``) resumably."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..layout import INDEX_FILE, METADATA_FILE

REPO_ID = "imageomics/bioclip-image-search-lite"
FILES = (str(INDEX_FILE), str(METADATA_FILE))


def download_published(dest: Path, repo_id: str = REPO_ID, revision: str | None = None) -> Path:
    """Place ``faiss/index.index`` and ``duckdb/metadata.duckdb`` under ``dest``.

    A copy already in the Hugging Face cache (``HF_HUB_CACHE``) is linked, not copied again;
    otherwise the files download straight into ``dest`` through ``huggingface_hub``, which
    resumes an interrupted transfer and shows progress. Works with ``HF_HUB_OFFLINE=1`` when
    the cache is filled.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError

    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        target = dest / name
        if target.is_file():
            continue
        cached = try_to_load_from_cache(repo_id, name, revision=revision, repo_type="model")
        if isinstance(cached, str) and Path(cached).is_file():
            _link(Path(cached), target)
            continue
        try:
            hf_hub_download(repo_id, name, revision=revision, repo_type="model", local_dir=str(dest))
        except LocalEntryNotFoundError:
            raise OSError(
                f"{repo_id}/{name} is not in the Hugging Face cache and cannot be downloaded "
                "(offline: HF_HUB_OFFLINE is set, or no network). Connect to the internet, or copy "
                f"the files to {dest} yourself and pass --atlas {dest}."
            ) from None
    return dest


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source = source.resolve()
    try:
        os.link(source, target)
    except OSError:
        try:
            target.symlink_to(source)
        except OSError:
            shutil.copyfile(source, target)
