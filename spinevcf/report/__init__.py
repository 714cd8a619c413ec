"""Outputs of spinevcf: DICOM SR (TID 1500), annotated picture (PNG + Secondary Capture), results.json.

* :mod:`spinevcf.report.codes`: coded concepts and the private scheme ``99SPINEVCF``;
* :mod:`spinevcf.report.sr`: :func:`build_sr`, :func:`read_sr_measurements`,
  :func:`read_sr_patient_findings`;
* :mod:`spinevcf.report.capture`: :func:`render_annotated_cpr`,
  :func:`build_secondary_capture`, :func:`save_png`;
* :mod:`spinevcf.report.writer`: :func:`write_outputs` (atomic);
* :mod:`spinevcf.report.header` and :mod:`spinevcf.report.sr_encode`: the DICOM header and
  the SR content written with pydicom alone.

Importing this package, building and writing the outputs never import highdicom (issue 15);
only reading an SR back does (``read_sr_*``). See ``docs/sr.md``.
"""

from spinevcf.report.capture import build_secondary_capture, render_annotated_cpr, save_png
from spinevcf.report.sr import build_sr, read_sr_measurements, read_sr_patient_findings
from spinevcf.report.writer import write_outputs

__all__ = [
    "build_sr",
    "read_sr_measurements",
    "read_sr_patient_findings",
    "render_annotated_cpr",
    "build_secondary_capture",
    "save_png",
    "write_outputs",
]
