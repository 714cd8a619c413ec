"""Command line / environment resolution of the application settings."""

from __future__ import annotations

from pathlib import Path

import pytest

import app.settings as settings_module
from app.settings import parse_settings
from spinevcf.errors import InputError, OutputError
from spinevcf.pipeline import default_model_repository

_ENV = (
    "HOLOSCAN_INPUT_PATH",
    "HOLOSCAN_OUTPUT_PATH",
    "HOLOSCAN_MODEL_PATH",
    "TRITON_SERVER_NETLOC",
    "SPINEVCF_TRITON_PROTOCOL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def test_command_line(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "models").mkdir()
    s = parse_settings(
        [
            "app",
            "-i",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "-m",
            str(tmp_path / "models"),
            "--triton-url",
            "localhost:8001",
            "--triton-protocol",
            "http",
        ]
    )
    assert s.input_folder == tmp_path / "in"
    assert s.output_folder == tmp_path / "out"
    assert s.model_repository == tmp_path / "models"
    assert (s.triton_url, s.triton_protocol) == ("localhost:8001", "http")


def test_map_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    monkeypatch.setenv("HOLOSCAN_INPUT_PATH", str(tmp_path / "in"))
    monkeypatch.setenv("HOLOSCAN_OUTPUT_PATH", str(tmp_path / "out"))
    monkeypatch.setenv("HOLOSCAN_MODEL_PATH", str(tmp_path / "models"))
    monkeypatch.setenv("TRITON_SERVER_NETLOC", "triton:8001")
    s = parse_settings(["app"])
    assert s.input_folder == tmp_path / "in"
    assert s.output_folder == tmp_path / "out"
    assert s.model_repository == tmp_path / "models"
    assert (s.triton_url, s.triton_protocol) == ("triton:8001", "grpc")
    # the command line wins over the environment; the SDK's -t is an alias
    assert parse_settings(["app", "-t", "other:9000"]).triton_url == "other:9000"
    assert parse_settings(["app", "-t", "other:9000", "--triton-url", "x:1"]).triton_url == "x:1"


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    s = parse_settings(["app", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    assert s.model_repository == default_model_repository()
    assert s.triton_url is None and s.triton_protocol == "grpc"


@pytest.mark.parametrize(
    ("extra", "match"),
    [(["--triton-url", "no-port"], "Triton URL"), (["--triton-protocol", "udp"], "protocol")],
)
def test_invalid_triton_options(tmp_path: Path, extra: list[str], match: str) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(InputError, match=match):
        parse_settings(["app", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *extra])


def test_missing_input_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLOSCAN_INPUT_PATH", str(tmp_path / "nope"))
    with pytest.raises(InputError, match="input folder not found"):
        parse_settings(["app", "-o", str(tmp_path / "out")])


def test_output_folder_is_not_created_while_parsing(tmp_path: Path) -> None:
    """The folder is made by the output writer, so a run that fails leaves none behind."""
    (tmp_path / "in").mkdir()
    out = tmp_path / "a" / "b" / "out"
    s = parse_settings(["app", "-i", str(tmp_path / "in"), "--output", str(out)])
    assert s.output_folder == out
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("below", ["", "out", "out/deeper"])
def test_output_path_on_a_file(tmp_path: Path, below: str) -> None:
    """A regular file as the output path or one of its parents: OutputError without the path."""
    (tmp_path / "in").mkdir()
    blocker = tmp_path / "DOE^JOHN"
    blocker.write_text("a file, not a folder\n")
    out = blocker / below if below else blocker
    with pytest.raises(OutputError, match="output folder") as info:
        parse_settings(["app", "-i", str(tmp_path / "in"), "-o", str(out)])
    assert "DOE" not in str(info.value)
    assert blocker.read_text() == "a file, not a folder\n"


def test_output_path_from_the_environment_is_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "blocker").write_text("x\n")
    monkeypatch.setenv("HOLOSCAN_OUTPUT_PATH", str(tmp_path / "blocker" / "out"))
    with pytest.raises(OutputError, match="not a folder"):
        parse_settings(["app", "-i", str(tmp_path / "in")])


def test_output_folder_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.access is faked: the tests may run as root, who can write into a read-only folder."""
    (tmp_path / "in").mkdir()
    (tmp_path / "locked").mkdir()
    monkeypatch.setattr(settings_module.os, "access", lambda *args, **kwargs: False)
    with pytest.raises(OutputError, match="nearest existing parent is not writable"):
        parse_settings(["app", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "locked" / "out")])
    with pytest.raises(OutputError, match="output folder is not writable"):
        parse_settings(["app", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "locked")])
