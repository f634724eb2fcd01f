"""Model folders on the Hugging Face Hub, for `SegNeXt.from_pretrained` and `SegNeXt.push_to_hub`.

A repository on the Hub holds exactly the model folder that `segnext.save_model` writes:
`config.json`, `model.safetensors` and the `README.md` model card. Where a path is expected
(`create_model(checkpoint=...)`, every command's --checkpoint, `model.checkpoint` of a config),
`hf://owner/name` (or `hf://owner/name@revision`) names such a repository. Downloads go through
huggingface_hub's cache, so `HF_HUB_OFFLINE=1`, `HF_HUB_CACHE`, tokens and mirrors work as they
do for every Hub library. huggingface_hub is optional: `pip install 'segnext[hub]'`.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Optional, Tuple

from .card import CARD_FILE
from .weights import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, save_model

FOLDER_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
HUB_PREFIX = "hf://"
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def hub_reference(text) -> Optional[Tuple[str, Optional[str]]]:
    """(repository id, revision or None) of "hf://owner/name[@revision]"; None for anything else
    (a path). A malformed one is an error that shows the form."""
    if not isinstance(text, str) or not text.startswith(HUB_PREFIX):
        return None
    repo_id, at, revision = text[len(HUB_PREFIX):].partition("@")
    if not _REPO_ID.match(repo_id) or (at and not revision):
        raise ValueError(f"{text!r} is not a Hugging Face Hub model: write hf://owner/name, or "
                         f"hf://owner/name@revision (a branch, tag or commit)")
    return repo_id, revision or None


def resolve_checkpoint(checkpoint):
    """`checkpoint` as it is, or for "hf://owner/name[@revision]" the local copy of that repository."""
    reference = hub_reference(checkpoint)
    if reference is None:
        return checkpoint
    repo_id, revision = reference
    return resolve_model_folder(repo_id, revision)


def _huggingface_hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ValueError("the Hugging Face Hub needs huggingface_hub: pip install 'segnext[hub]'") from None
    return huggingface_hub


def resolve_model_folder(folder_or_hub_id, revision: Optional[str] = None, cache_dir=None) -> Path:
    """A local path as it is, or the local copy of the Hub repository `owner/name` (downloaded
    into huggingface_hub's cache unless it is there already)."""
    reference = hub_reference(folder_or_hub_id)
    if reference is not None:
        folder_or_hub_id, revision = reference[0], reference[1] or revision
    path = Path(folder_or_hub_id).expanduser()
    if path.exists():
        return path
    text = str(folder_or_hub_id)
    if not _REPO_ID.match(text):
        raise FileNotFoundError(f"{text} is neither a local model folder nor a Hugging Face Hub id (owner/name).")
    hub = _huggingface_hub()
    try:
        folder = hub.snapshot_download(text, revision=revision, allow_patterns=list(FOLDER_FILES), cache_dir=cache_dir)
    except Exception as error:  # huggingface_hub's errors differ by version; all are reported the same way
        raise CheckpointError(f"Cannot get {text} from the Hugging Face Hub ({type(error).__name__}: "
                              f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}). Check the id "
                              f"and the network; with HF_HUB_OFFLINE=1 only models already in the cache "
                              "(HF_HUB_CACHE) are found.") from None
    return Path(folder)


def push_model_folder(model, repo_id: str, *, private: Optional[bool] = None, token: Optional[str] = None,
                      commit_message: str = "Upload SegNeXt model", source: Optional[str] = None,
                      metrics: Optional[dict] = None) -> str:
    """Save `model` as a model folder and upload it to the Hub repository `repo_id` (created if
    needed); returns the commit's URL."""
    with tempfile.TemporaryDirectory() as folder:
        save_model(model, folder, source=source, metrics=metrics)
        return upload_model_folder(folder, repo_id, private=private, token=token, commit_message=commit_message)


def check_repo_id(repo_id: str) -> None:
    """Refuse what cannot name a Hub repository, before any work."""
    if not _REPO_ID.match(repo_id):
        raise ValueError(f"{repo_id!r} is not a Hugging Face Hub repository id: write owner/name")


def upload_model_folder(folder, repo_id: str, *, private: Optional[bool] = None, token: Optional[str] = None,
                        commit_message: str = "Upload SegNeXt model") -> str:
    """Upload the model folder `folder` as it is (its card and records kept) to the Hub repository
    `repo_id` (created if needed); only the model folder's files. Returns the commit's URL."""
    check_repo_id(repo_id)
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (Path(folder) / name).is_file()]
    if missing:
        raise ValueError(f"{folder} is not a model folder (no {', '.join(missing)}); write one with segnext convert "
                         f"or segnext.save_model")
    hub = _huggingface_hub()
    api = hub.HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                               allow_patterns=list(FOLDER_FILES))
    return str(getattr(commit, "commit_url", commit))
