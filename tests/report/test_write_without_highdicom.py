"""Writing the outputs never imports highdicom nor pydicom.sr (issue 15: ~0.5 s of a fresh process).

Run in a fresh interpreter: ``import spinevcf.report``, build the SR and the Secondary
Capture of a study with assessed and not-assessable bodies, write all outputs; highdicom
must not be in ``sys.modules`` afterwards. Reading the SR back may import it (lazily).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from pydicom.dataset import Dataset

from spinevcf.schema import StudyRecord

ROOT = Path(__file__).resolve().parents[2]

_WRITE = """
import pickle, sys
from pathlib import Path
import numpy as np
import spinevcf.report
from spinevcf.report import build_secondary_capture, build_sr, render_annotated_cpr, write_outputs
record, header, uids = pickle.loads(Path(sys.argv[1]).read_bytes())
out = Path(sys.argv[2])
image = np.zeros((160, 96), np.float32)
png = render_annotated_cpr(image, record)
paths = write_outputs(
    out,
    record,
    sr=build_sr(record, header, referenced_sop_instance_uids=uids),
    capture=build_secondary_capture(png, header),
    png=png,
)
print("WROTE", sorted(paths))
print("HIGHDICOM_LOADED", sorted(m for m in sys.modules if m.split(".")[0] == "highdicom"))
print("PYDICOM_SR_LOADED", "pydicom.sr" in sys.modules)
from spinevcf.report import read_sr_measurements
back = read_sr_measurements(paths["sr"])
print("READ", list(back), "highdicom" in sys.modules)
"""


def test_write_path_does_not_import_highdicom(
    tmp_path: Path, record_with_cut: StudyRecord, ct_header: Dataset, series_uids: list[str]
) -> None:
    data = tmp_path / "study.pickle"
    data.write_bytes(pickle.dumps((record_with_cut, ct_header, series_uids)))
    proc = subprocess.run(
        [sys.executable, "-c", _WRITE, str(data), str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WROTE ['capture', 'png', 'results', 'sr']" in proc.stdout
    assert "HIGHDICOM_LOADED []" in proc.stdout
    # nor pydicom.sr, whose concept dictionaries cost ~0.1 s (spinevcf.report.sr_encode.Code)
    assert "PYDICOM_SR_LOADED False" in proc.stdout
    # reading back still works, and is what imports highdicom
    labels = [v.label for v in record_with_cut.vertebrae]
    assert f"READ {labels} True" in proc.stdout
