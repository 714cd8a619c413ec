"""Fixtures of the reliability tests: the corpus and the fuzz-case count.

Options:
    ``--fuzz-cases N``: number of seeded fuzz cases at the load_study level (default
    :data:`DEFAULT_FUZZ_CASES`); ``--fuzz-seed S`` changes the seed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# app/ and operators/ are top-level packages of the repository, not installed.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from corpus import CASES  # noqa: E402

#: Fuzz cases run by default (CI); ``--fuzz-cases`` overrides.
DEFAULT_FUZZ_CASES = 300
#: Default seed of the fuzzer.
DEFAULT_FUZZ_SEED = 20230817


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--fuzz-cases`` and ``--fuzz-seed``."""
    group = parser.getgroup("spinevcf reliability")
    group.addoption(
        "--fuzz-cases",
        type=int,
        default=DEFAULT_FUZZ_CASES,
        help=f"number of load_study fuzz cases (default {DEFAULT_FUZZ_CASES})",
    )
    group.addoption("--fuzz-seed", type=int, default=DEFAULT_FUZZ_SEED, help="seed of the fuzzer")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``fuzz_index`` with ``range(--fuzz-cases)``."""
    if "fuzz_index" in metafunc.fixturenames:
        n = int(metafunc.config.getoption("--fuzz-cases"))
        metafunc.parametrize("fuzz_index", range(n))


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every corpus study, built once per session: ``corpus_root / case.name``."""
    root = tmp_path_factory.mktemp("corpus")
    for case in CASES:
        case.build(root / case.name)
    return root
