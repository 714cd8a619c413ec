"""``spinevcf train``: config overrides reach the trainer (no training runs here)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

import spinevcf.training.train_detector as train_detector_module
from spinevcf.commands import train as train_command

REPO = Path(__file__).resolve().parents[2]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_command.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def _committed(key: str) -> Any:
    return yaml.safe_load((REPO / "configs" / "detector.yaml").read_text())[key]


@pytest.mark.parametrize(
    ("extra", "seed", "iterations"),
    [([], None, None), (["--seed", "7", "--iterations", "5"], 7, 5)],  # None: the config's value
)
def test_overrides_reach_the_trainer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, extra: list[str], seed: int | None, iterations: int | None
) -> None:
    seed = _committed("seed") if seed is None else seed
    iterations = _committed("iterations") if iterations is None else iterations
    seen: dict[str, Any] = {}

    def fake_train(cfg: dict[str, Any], config_path: str, out: Path, *, workers: int = 2) -> Path:
        seen.update(cfg)
        return out / "x.pt"

    monkeypatch.setattr(train_detector_module, "train_detector", fake_train)
    args = _parse(
        [
            "train",
            "detector",
            "--config",
            str(REPO / "configs" / "detector.yaml"),
            "--out",
            str(tmp_path),
            *extra,
        ]
    )
    assert args.func(args) == 0
    assert seen["seed"] == seed and seen["iterations"] == iterations
