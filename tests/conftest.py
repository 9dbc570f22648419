"""Test-wide setup: no third-party plugin loads unless a test asks for it; one render cache
for the whole session, shared by its test processes (``$AFFECTKIT_CACHE_DIR``, a temp
folder: the runs the tests start render the same faces, and the user's own cache is never
touched); the modules with the most end-to-end tests first; one trained run of the quick
recipe shared by the tests of ``test_quick_recipe.py``; a tiny CLIP checkpoint on disk.

``make test`` runs two test processes (pytest-xdist), each module in one, in the order
given here: much of an end-to-end test is start-up, its own and Ray's, which leaves a core
idle."""

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("AFFECTKIT_PLUGINS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
#: a test process of pytest-xdist, started by a controller that made the session's cache
XDIST_WORKER = "PYTEST_XDIST_WORKER" in os.environ
if not XDIST_WORKER:
    os.environ["AFFECTKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="affectkit-test-cache-")
SESSION_CACHE = Path(os.environ["AFFECTKIT_CACHE_DIR"])


def pytest_unconfigure(config: pytest.Config) -> None:
    if not XDIST_WORKER:
        shutil.rmtree(SESSION_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules with the most end-to-end tests first, so that in two test processes
    none of them is left to run alone at the end."""
    slow = Counter(item.module.__name__ for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.module.__name__])


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """The quick recipe, as README users run it (with outputs kept in a temp folder):
    (temp folder, run directory, console output)."""
    from cli_runs import run_ok

    tmp = tmp_path_factory.mktemp("quick")
    out = run_ok("run", "recipes/quick.yaml", "--set", f"output.dir={tmp / 'runs'}")
    (run_dir,) = (tmp / "runs" / "quick").glob("2*")
    return tmp, run_dir, out


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer CLIPModel checkpoint with a character-level CLIP (byte-level BPE) tokenizer."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for char in chars:
            vocab[char + suffix] = len(vocab)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1, **small),
        vision_config=dict(image_size=32, patch_size=8, **small),
        projection_dim=24,
    )
    folder = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    return folder
