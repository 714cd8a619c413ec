"""``spinevcf run``: many studies, models loaded once, failures reported at the end."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
from _app_studies import write_mr_study, write_study

import spinevcf.pipeline as pipeline_module
from spinevcf import cli
from spinevcf.commands import run as run_command
from spinevcf.commands.run import EXIT_SOME_FAILED, StudyInput, discover_studies, is_valid_uid, output_names
from spinevcf.errors import SpineVCFError
from tests.fake_pipeline import FakePipeline


def main(argv: list[str]) -> int:
    """``spinevcf run ...`` through the run subcommand's own parser (as :func:`spinevcf.cli.main` does)."""
    parser = argparse.ArgumentParser(prog="spinevcf")
    run_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SpineVCFError as exc:
        return exc.exit_code


def test_registered_in_cli() -> None:
    assert "run" in cli.COMMANDS


@pytest.fixture
def fake_pipelines(monkeypatch: pytest.MonkeyPatch) -> list[FakePipeline]:
    made: list[FakePipeline] = []

    def factory(*args: object, **kwargs: object) -> FakePipeline:
        made.append(FakePipeline(spine=True))
        return made[-1]

    monkeypatch.setattr(pipeline_module, "Pipeline", factory)
    return made


# The runs below use ``--workers 0`` (studies in this process): the monkeypatched pipeline
# only exists here, not in worker processes (tests/batch covers the workers).


def _small(folder: Path, seed: int) -> Path:
    return write_study(folder, shape=(24, 96, 96), seed=seed)


def test_two_studies_and_a_failure(tmp_path: Path, fake_pipelines: list[FakePipeline]) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    _small(inp / "a", 1)
    _small(inp / "b", 2)
    write_mr_study(inp / "c_mr")
    code = main(["run", str(inp), str(out), "--no-progress", "--workers", "0"])
    assert code == EXIT_SOME_FAILED
    assert len(fake_pipelines) == 1 and fake_pipelines[0].closed  # models loaded once
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["n_studies"] == 3 and summary["n_failed"] == 1
    by_input = {s["input"]: s for s in summary["studies"]}
    assert by_input["c_mr"]["status"] == "failed" and by_input["c_mr"]["exit_code"] == 3
    for key in ("a", "b"):
        folder = out / by_input[key]["output"]
        assert is_valid_uid(folder.name)
        assert (folder / "results.json").is_file() and len(list(folder.glob("sr_*.dcm"))) == 1
    assert not (out / by_input["c_mr"]["output"]).exists()


def test_all_ok_exit_zero(tmp_path: Path, fake_pipelines: list[FakePipeline]) -> None:
    _small(tmp_path / "in" / "a", 3)
    _small(tmp_path / "in" / "b", 4)
    assert main(["run", str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress", "--workers", "0"]) == 0
    assert len([p for p in (tmp_path / "out").iterdir() if p.is_dir()]) == 2


def test_flat_folder_grouped_by_study(tmp_path: Path, fake_pipelines: list[FakePipeline]) -> None:
    flat = tmp_path / "flat"
    for seed in (5, 6):
        src = _small(tmp_path / f"s{seed}", seed)
        for f in src.rglob("*"):
            if f.is_file():
                (flat / f"{seed}_{f.name}").parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, flat / f"{seed}_{f.name}")
    studies = discover_studies(flat)
    assert len(studies) == 2 and all(len(s.files) == 24 for s in studies)
    assert main(["run", str(flat), str(tmp_path / "out"), "--no-progress", "--workers", "0"]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir() if p.is_dir()} == {
        s.study_instance_uid for s in studies
    }


def test_output_names_never_use_free_text() -> None:
    studies = [
        StudyInput("DOE^JOHN", Path("x"), study_instance_uid="1.2.3"),
        StudyInput("other", Path("y"), study_instance_uid="1.2.3"),
        StudyInput("../../etc", Path("z"), study_instance_uid="../../etc"),
        StudyInput("w", Path("w"), study_instance_uid="1.02.3"),
    ]
    names = output_names(studies)
    assert names[0] == "1.2.3"
    assert names[1].startswith("1.2.3-") and len(set(names)) == 4
    assert names[2].startswith("study-") and names[3].startswith("study-")
    assert all("/" not in n and "DOE" not in n for n in names)


def test_empty_input_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    assert main(["run", str(tmp_path / "in"), str(tmp_path / "out"), "--no-progress", "--workers", "0"]) == 3
