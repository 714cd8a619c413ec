"""A whole ``python -m app`` run writes its SR and Secondary Capture without highdicom or pydicom.sr.

issue 15: highdicom's import and its standard tables cost a fresh process about 0.5 s; the
outputs are written with pydicom alone (``spinevcf/report/header.py``, ``sr_encode.py``).
The application's ``main`` runs in a fresh interpreter, which then reports its modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _app_studies import REPO, needs_models

_RUN = """
import sys
sys.argv = ["app", "-i", sys.argv[1], "-o", sys.argv[2]]
from app.__main__ import main
code = main()
print("EXIT", code)
print("HIGHDICOM_LOADED", sorted(m for m in sys.modules if m.split(".")[0] == "highdicom"))
print("PYDICOM_SR_LOADED", "pydicom.sr" in sys.modules)
"""


@needs_models
def test_app_run_does_not_import_highdicom(studies: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOLOSCAN_", "TRITON_", "SPINEVCF_"))}
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, str(studies["ct"]), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert "EXIT 0" in proc.stdout, proc.stderr[-3000:]
    assert len(list(out.glob("sr_*.dcm"))) == 1 and len(list(out.glob("sc_*.dcm"))) == 1
    assert "HIGHDICOM_LOADED []" in proc.stdout
    assert "PYDICOM_SR_LOADED False" in proc.stdout  # pydicom's concept dictionaries: ~0.1 s
