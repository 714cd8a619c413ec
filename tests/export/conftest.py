"""Fixtures of the export tests: random-weight checkpoints exported once per session."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `export` lives at the repository root, outside the installed package
    sys.path.insert(0, str(ROOT))

from export.random_checkpoint import export_random_repository  # noqa: E402

#: Fixed export timestamp: no wall clock in tests.
EXPORTED_AT = "2025-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class Exported:
    """A repository exported from random checkpoints."""

    path: Path
    checkpoints: dict[str, Path]
    exported_at: str = EXPORTED_AT


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Both models exported (parity-checked) into a temporary repository."""
    base = tmp_path_factory.mktemp("export")
    ckpts = export_random_repository(base / "repo", base / "ckpt", seed=3, exported_at=EXPORTED_AT)
    return Exported(base / "repo", ckpts)
