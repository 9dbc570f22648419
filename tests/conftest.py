"""Test-wide setup: no third-party plugin loads unless a test asks for it."""

import os

os.environ.setdefault("AFFECTKIT_PLUGINS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
