"""Fixtures of the application tests: small studies, a fake pipeline, model availability."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The app/ and operators/ folders are top-level packages of the repository, not installed.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _app_studies import write_mr_study, write_study  # noqa: E402


@pytest.fixture(scope="session")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One CT study with a bone column, one water-cylinder study, one MR study."""
    root = tmp_path_factory.mktemp("studies")
    return {
        "ct": write_study(root / "ct", spine=True, seed=11),
        "water": write_study(root / "water", spine=False, seed=12),
        "mr": write_mr_study(root / "mr"),
    }
