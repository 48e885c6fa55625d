"""Fetch the published artifacts (``imageomics/bioclip-image-search-lite``) resumably."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..layout import INDEX_FILE, METADATA_FILE

REPO_ID = "imageomics/bioclip-image-search-lite"
FILES = (str(INDEX_FILE), str(METADATA_FILE))
#: The published embeddings (gated: accept the dataset's conditions on the hub, then log in or
#: set HF_TOKEN); one folder of parquet per model and precision.
EMBEDDINGS_REPO = "imageomics/TreeOfLife-200M-Embeddings"
EMBEDDINGS_CONFIG = "bioclip-2_float16"


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


def download_embeddings(dest: Path, config: str = EMBEDDINGS_CONFIG, repo_id: str = EMBEDDINGS_REPO) -> Path:
    """Download one config of the published embeddings (``bioclip-2_float16``: about 360 GB of
    parquet) into ``dest/<config>``, resumably; returns that folder, ready for
    ``bioclip-nb prepare --embeddings``. The dataset is gated: the error says how to get access."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        snapshot_download(repo_id, repo_type="dataset", allow_patterns=[f"{config}/*"], local_dir=str(dest))
    except (GatedRepoError, RepositoryNotFoundError):
        raise OSError(f"{repo_id} is gated: accept its conditions at https://huggingface.co/datasets/{repo_id}, "
                      "then `huggingface-cli login` (or set HF_TOKEN) and run this again") from None
    except LocalEntryNotFoundError:
        raise OSError(f"{repo_id} cannot be downloaded here (offline: HF_HUB_OFFLINE is set, or no network); "
                      f"copy the {config} parquet files to {dest / config} yourself") from None
    folder = dest / config
    if not any(folder.glob("*.parquet")) and not any(folder.rglob("*.parquet")):
        raise OSError(f"no parquet files of {config} arrived in {folder}; is {config!r} a config of {repo_id}?")
    return folder
