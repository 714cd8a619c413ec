"""Imports of scripts/deploy/ (not a package) for the deployment tests."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "deploy"))

import check_deploy  # noqa: E402
import render_kustomize  # noqa: E402

__all__ = ["REPO", "check_deploy", "render_kustomize"]
