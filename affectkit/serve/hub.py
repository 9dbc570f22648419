"""Where models come from and go: the model shipped with affectkit, local folders, run
folders, and the Hugging Face Hub (through ``huggingface_hub``: cached downloads,
``revision=``, ``HF_ENDPOINT`` and ``HF_TOKEN`` as everywhere else in that ecosystem).
"""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.parse
from pathlib import Path

from affectkit.errors import AffectkitError

#: the model shipped in the package: AffectVLM trained on the embedded facekit scans
#: (``recipes/affectvlm.yaml``); its card (README.md) says how and how well
DEFAULT_MODEL = Path(__file__).with_name("pretrained") / "affectvlm-facekit"
MODEL_META = "checkpoint.json"


def hub_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything in its cause chain) means the network could not be used:
    no connection, ``HF_HUB_OFFLINE`` set, or a file neither downloadable nor cached."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    network = (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, urllib.error.URLError, socket.gaierror, TimeoutError)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, network) or "couldn't connect to" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def hub_out_of_reach(repo_id: str, filename: str = "config.json", revision: str | None = None) -> bool:
    """Whether ``repo_id`` is neither in the local Hugging Face cache nor downloadable now.

    Checked before a download so that an offline machine fails at once: the client would
    otherwise retry for close to a minute. The hub counts as reachable when a TCP connection
    to ``HF_ENDPOINT`` opens within 3 s, or when a proxy is configured (it cannot be probed).
    """
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        if isinstance(try_to_load_from_cache(repo_id, filename, revision=revision), str):
            return False
    except HFValidationError:
        return False  # not a hub id at all: the download reports that itself
    if constants.HF_HUB_OFFLINE:
        return True
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return False
    endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    try:
        port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
        with socket.create_connection((endpoint.hostname or "", port), timeout=3):
            return False
    except (OSError, ValueError):
        return True


def looks_like_path(source: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a folder."""
    return source.startswith((".", "/", "~", "\\")) or source.count("/") > 1 or "\\" in source or Path(source).is_absolute()


def is_model_folder(path: Path) -> bool:
    return (path / MODEL_META).is_file()


def resolve_model(source: str | Path | None = None, revision: str | None = None) -> Path:
    """The local folder of a model: ``None`` is the shipped default; a model folder, or a run
    folder (its ``model/``), is used as it is; anything else is a hub id (``owner/name``),
    downloaded once at ``revision`` (branch, tag or commit) into the Hugging Face cache."""
    if source is None:
        if not is_model_folder(DEFAULT_MODEL):
            raise AffectkitError(f"the default model is missing from this installation ({DEFAULT_MODEL}); reinstall affectkit or name a model")
        return DEFAULT_MODEL
    folder = Path(source).expanduser()
    if folder.is_dir():
        if not is_model_folder(folder) and is_model_folder(folder / "model"):
            return folder / "model"
        return folder
    text = str(source)
    if looks_like_path(text) or ("/" not in text and folder.suffix):  # "face.ply" is a file name; "org/name.v2" a hub id
        raise AffectkitError(f"{text}: no such model folder (a model is a folder with {MODEL_META}, a run folder, or a hub id owner/name)")
    return _download(text, revision)


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

    from affectkit import __version__

    unreachable = AffectkitError(
        f"{repo_id}: not a local folder, the Hugging Face hub is unreachable (no network, or HF_HUB_OFFLINE is set) "
        f"and the model is not in the local cache; download it once while online, or name a local model folder"
    )
    if hub_out_of_reach(repo_id, MODEL_META, revision):
        raise unreachable
    try:
        return Path(snapshot_download(repo_id, revision=revision, library_name="affectkit", library_version=__version__))
    except RevisionNotFoundError:
        raise AffectkitError(f"{repo_id}: the Hugging Face hub has no revision {revision!r} of this model") from None
    except RepositoryNotFoundError:
        raise AffectkitError(f"{repo_id}: no such model on the Hugging Face hub (or it is private: log in with `hf auth login` or set HF_TOKEN)") from None
    except HFValidationError as exc:
        raise AffectkitError(f"{repo_id!r}: neither a model folder nor a valid hub id ({exc})") from None
    except Exception as exc:
        if hub_unreachable(exc):
            raise unreachable from None
        raise AffectkitError(f"{repo_id}: could not download the model from the Hugging Face hub ({type(exc).__name__}: {exc})") from None


def prepare_upload(model_dir: Path, staging: Path) -> Path:
    """``model_dir`` as it should be shared: without training state (a raw checkpoint is
    exported into ``staging``) and with a model card (written from its run's held-out
    report, ``../eval/report.json``, when it has none)."""
    import json
    import shutil
    import warnings

    from affectkit.evaluate.reports import EvalReport
    from affectkit.model.checkpoint import TRAINING_FILE, export_model, read_meta
    from affectkit.serve.model_card import CARD_FILE, CardResult, write_model_card

    read_meta(model_dir)  # a damaged or unverifiable model is refused here, not published
    upload = Path(staging) / "model"
    if (model_dir / TRAINING_FILE).exists():
        export_model(model_dir, upload)
        if (model_dir / CARD_FILE).is_file():
            shutil.copyfile(model_dir / CARD_FILE, upload / CARD_FILE)
    else:
        shutil.copytree(model_dir, upload, ignore=shutil.ignore_patterns(".*"))
    if not (upload / CARD_FILE).is_file():
        report_file = model_dir.parent / "eval" / "report.json"
        dataset = (read_meta(upload)[0].provenance.get("dataset") or {}).get("name", "unknown")
        results = []
        if report_file.is_file():
            try:
                results = [CardResult("held-out subjects", dataset, EvalReport(**json.loads(report_file.read_text())))]
            except (ValueError, TypeError) as exc:  # an edited or older report: the card says no evaluation
                warnings.warn(f"{report_file}: not a report this affectkit reads ({type(exc).__name__}); the model card lists no results", stacklevel=2)
        write_model_card(upload, results)
    return upload


def push_model(model_dir: Path, repo_id: str, private: bool = False, message: str | None = None) -> str:
    """Upload an exported model folder (weights, config, prompt features, card) to a hub
    repository, created if needed; the commit's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    files = sorted(p.name for p in Path(model_dir).iterdir() if p.is_file() and not p.name.startswith("."))
    api = HfApi(library_name="affectkit")
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(model_dir), repo_id=repo_id, allow_patterns=files, commit_message=message or f"affectkit model ({', '.join(files)})"
        )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        hint = " (log in with `hf auth login` or set HF_TOKEN, with write access to that repository)" if status in (401, 403) else ""
        raise AffectkitError(f"{repo_id}: the Hugging Face hub refused the upload: {str(exc).splitlines()[0]}{hint}") from None
    except ValueError as exc:  # the hub's check of the model card's metadata
        raise AffectkitError(f"{model_dir / 'README.md'}: the Hugging Face hub refused the model card: {' '.join(str(exc).split())}") from None
    except Exception as exc:
        if hub_unreachable(exc):
            raise AffectkitError(f"{repo_id}: the Hugging Face hub is unreachable (no network, or HF_HUB_OFFLINE is set); nothing was uploaded") from None
        raise
    return str(commit.commit_url)
