"""The detector's training loop end to end, on two tiny hand-made CPRs (no data cache).

It runs in a subprocess: ``torch.optim`` imports ``torch._dynamo``, which fails when the
suite has made ``scripts/triton`` importable as a namespace package ``triton``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np
import torch
import yaml

import spinevcf.training.train_detector as td
from spinevcf.networks import build_model
from spinevcf.inference.base import DETECTOR_MODEL
from spinevcf.training.data import DetectorItem

out = Path(sys.argv[1])
cfg = yaml.safe_load(open(sys.argv[2]).read())
arch = {"in_channels": 2, "widths": [8, 8, 8, 8, 8], "head_channels": 8}
cfg.update(arch=arch, iterations=3, batch_size=2, crop_rows=64, threads=1)
for k in ("init_checkpoint", "trainable"):
    cfg.pop(k, None)
teacher = build_model(DETECTOR_MODEL, **arch)
torch.save({"arch": arch, "state_dict": teacher.state_dict()}, out / "teacher.pt")
cfg["distill"] = {"checkpoint": str(out / "teacher.pt"), "weight": 1.0, "temperature": 2.0}

def item(r0):
    img = np.full((2, 96, 128), -1000.0, np.float32)
    img[:, r0:r0 + 20, 56:80] = 300.0
    kp = np.array([[r0, 56], [r0, 68], [r0, 80], [r0 + 20, 56], [r0 + 20, 68], [r0 + 20, 80]], float)
    return DetectorItem(img, [kp], [10], [])

items = [item(20), item(40)]
td.prepare_data = lambda kind, c, w: (out, [0], [1])
td.load_detector_items = lambda cache, seeds: [items[s] for s in seeds]
ckpt = td.train_detector(cfg, "tiny.yaml", out, workers=1)
state = torch.load(ckpt, map_location="cpu", weights_only=False)
prov = state["provenance"]
print(json.dumps({"ckpt": str(ckpt), "metrics": sorted(prov["metrics"]), "arch": state["arch"], "distill": prov["train_config"]["distill"]["weight"]}))
"""


@pytest.mark.slow
def test_training_loop_with_distillation_writes_a_checkpoint(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(REPO / "configs" / "detector.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(res["ckpt"]) == tmp_path / "vertebra_detector_2d.pt" and Path(res["ckpt"]).is_file()
    assert "val_recall" in res["metrics"]
    assert res["arch"]["widths"] == [8, 8, 8, 8, 8]
    assert res["distill"] == 1.0  # the distillation setting is in the provenance
