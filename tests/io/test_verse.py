"""Tests of spinevcf.io.verse on a VerSe-format subject made from the project's own phantom.

The subject: a synthetic patient (seed 2, a grade 3 wedge fracture of T11) rendered on a
1 mm axial grid from the T10 to the L2 body centre (T10 and L2 cut by the field of view),
its body labels (1..24 = VerSe's C1..L5 numbering) joined by each vertebra's own posterior
elements into whole-vertebra labels as VerSe has them, written as NIfTI in the BIDS-like
layout with a VerSe'20 centroid file computed independently with nibabel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import nibabel.orientations as nio
import numpy as np
import pytest
from scipy import ndimage

from spinevcf.errors import InputError
from spinevcf.geometry.resample import grid_affine_for
from spinevcf.io.dicom import load_study
from spinevcf.io.nifti import load_nifti
from spinevcf.io.verse import (
    VerseCase,
    find_verse_cases,
    load_verse_case,
    main,
    read_verse_study,
    verse_uids,
)
from spinevcf.schema import LEVEL_INDEX, StudyRecord
from spinevcf.synth import SynthConfig, sample_phantom, truth_for
from spinevcf.synth.raster import Canvas
from spinevcf.training.common import load_config
from spinevcf.training.data import (
    DetectorItem,
    _cache_path,
    build_cache,
    item_keys,
    load_detector_items,
    make_verse_detector_items,
    make_verse_localizer_item,
    verse_split,
)

SEED = 2
CONFIG = SynthConfig(fracture_rate=0.3)
SUBJECT = "sub-synth002"
CASE = f"{SUBJECT}_dir-ax"
#: Levels whose bodies lie entirely inside the grid (T10 and L2 are cut at their centres).
FULL_LEVELS = ["T11", "T12", "L1"]
REPO = Path(__file__).resolve().parents[2]


def _write_nifti(path: Path, array: np.ndarray, lps_affine: np.ndarray) -> None:
    """Volume convention (array (n0, n1, n2), index->LPS) -> NIfTI (i, j, k) = (n2, n1, n0), RAS."""
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps_affine
    ijk = ras[:, [2, 1, 0, 3]]
    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(array, (2, 1, 0))), ijk)
    img.set_qform(ijk, code=1)
    img.set_sform(ijk, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _pir_centroids(mask_path: Path) -> list[dict]:
    """VerSe'20 centroid JSON: whole-vertebra centres of mass in the mask reoriented to P, I, R (nibabel)."""
    img = nib.load(str(mask_path))
    codes = ("P", "I", "R")
    pir = img.as_reoriented(nio.ornt_transform(nio.io_orientation(img.affine), nio.axcodes2ornt(codes)))
    data = np.asanyarray(pir.dataobj)
    labels = [int(v) for v in np.unique(data) if v > 0]
    coms = ndimage.center_of_mass(data > 0, data, labels)
    return [{"direction": list(codes)}] + [
        {"label": lab, "X": float(c[0]), "Y": float(c[1]), "Z": float(c[2])} for lab, c in zip(labels, coms, strict=True)
    ]


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    ph = sample_phantom(SEED, CONFIG)
    top, bot = ph.spine.by_level("T10").center, ph.spine.by_level("L2").center
    c = np.array([ph.spine.by_level(lev).center for lev in ("T10", "T11", "T12", "L1", "L2")])
    lo = np.array([c[:, 0].min() - 45.0, c[:, 1].min() - 30.0, bot[2]])
    hi = np.array([c[:, 0].max() + 45.0, c[:, 1].max() + 60.0, top[2]])
    # Axial slices from feet to head, rows anterior->posterior, columns right->left (1 mm).
    aff = np.eye(4)
    aff[:3, :3] = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).T
    aff[:3, 3] = lo
    shape = tuple(int(x) + 1 for x in (hi - lo)[::-1])
    ct = np.rint(ph.render(aff, shape)).astype(np.int16)
    lab = ph.render_labels(aff, shape)
    bodies = np.where(lab <= 24, lab, 0).astype(np.uint8)
    mask = bodies.copy()
    for vb in ph.spine.vertebrae:  # each vertebra's own posterior elements ("other bone" 26)
        if vb.label is None or vb.label > 24:
            continue
        cv = Canvas(aff, shape, labels=True, fill=0.0)
        for tube in vb.elements:
            tube.draw(cv)
        mask[(cv.data > 0) & (lab == 26) & (mask == 0)] = vb.label
    root = tmp_path_factory.mktemp("verse")
    ct_path = root / "rawdata" / SUBJECT / f"{CASE}_ct.nii.gz"
    mask_path = root / "derivatives" / SUBJECT / f"{CASE}_seg-vert_msk.nii.gz"
    _write_nifti(ct_path, ct, aff)
    _write_nifti(mask_path, mask, aff)
    (mask_path.parent / f"{CASE}_seg-subreg_ctd.json").write_text(json.dumps(_pir_centroids(mask_path)))
    case = find_verse_cases(root)[0]
    study = read_verse_study(case)
    ref = truth_for(ph, aff, shape, uids=verse_uids(CASE))
    return {"root": root, "aff": aff, "shape": shape, "bodies": bodies, "mask": mask, "case": case, "study": study, "ref": ref}


def test_nifti_writer_matches_the_project_reader(subject) -> None:
    vol = load_nifti(subject["case"].ct_path)
    assert vol.shape == subject["shape"]
    np.testing.assert_allclose(vol.affine, subject["aff"], atol=1e-4)


def test_find_cases_in_bids_flat_and_verse19_layouts(subject, tmp_path) -> None:
    case = subject["case"]
    assert (case.case_id, case.subject) == (CASE, SUBJECT)
    assert case.ct_path.name == f"{CASE}_ct.nii.gz"
    assert case.mask_path is not None and case.mask_path.parent.name == SUBJECT
    assert case.mask_path.parent.parent.name == "derivatives"
    assert case.centroid_path is not None and case.centroid_path.name.endswith("_seg-subreg_ctd.json")
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("sub-a_ct.nii.gz", "sub-a_seg-vert_msk.nii.gz", "sub-a_seg-vb_ctd.json", "sub-b_ct.nii"):
        (flat / name).write_bytes(b"")
    (flat / "verse004.nii.gz").write_bytes(b"")
    (flat / "verse004_seg.nii.gz").write_bytes(b"")
    found = {c.case_id: c for c in find_verse_cases(flat)}
    assert sorted(found) == ["sub-a", "sub-b", "verse004"]
    assert found["sub-a"].mask_path == flat / "sub-a_seg-vert_msk.nii.gz"
    assert found["sub-a"].centroid_path == flat / "sub-a_seg-vb_ctd.json"
    assert found["sub-b"].mask_path is None
    assert (found["verse004"].ct_path.name, found["verse004"].mask_path.name) == ("verse004.nii.gz", "verse004_seg.nii.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no VerSe CT"):
        find_verse_cases(tmp_path / "empty")


def test_body_is_separated_from_posterior_elements(subject) -> None:
    study = subject["study"]
    assert [g.name for g in study.vertebrae] == ["T10", "T11", "T12", "L1", "L2"]
    ph = sample_phantom(SEED, CONFIG)
    for g in study.vertebrae:
        if g.partial:
            continue
        true_body = subject["bodies"][g.body_slices] == g.label
        whole = subject["mask"] == g.label
        assert whole.sum() > 1.3 * (subject["bodies"] == g.label).sum(), "posterior elements to separate"
        inter = (g.body_mask & true_body).sum()
        # Only the pedicle roots at the posterolateral corners may stay with the body.
        assert inter / g.body_mask.sum() > 0.93, f"{g.name}: body region holds posterior elements"
        assert inter / (subject["bodies"] == g.label).sum() > 0.97, f"{g.name}: body region misses the body"
        vb = ph.spine.by_level(g.name)
        local = (g.body_points_lps(subject["aff"]) - vb.center) @ vb.rot
        assert local[:, 1].max() < vb.half_depth + 3.0, f"{g.name}: body region reaches behind the body"


def test_keypoints_heights_and_grades_match_the_phantom_truth(subject) -> None:
    truth, ref = subject["study"].truth, subject["ref"]
    assert [v.label for v in truth.vertebrae] == [v.label for v in ref.vertebrae] == FULL_LEVELS
    assert sorted(p["label"] for p in truth.extra["partial"]) == sorted(p["label"] for p in ref.extra["partial"])
    for mine, want in zip(truth.vertebrae, ref.vertebrae, strict=True):
        err = np.linalg.norm(mine.keypoints - want.keypoints, axis=1)
        assert err.max() < 1.5, f"{mine.label}: keypoint errors {err.round(2)} mm"
        for k, h in want.heights_mm.items():
            assert mine.heights_mm[k] == pytest.approx(h, abs=1.0), f"{mine.label} {k} height"
        assert (mine.genant_grade, mine.deformity) == (want.genant_grade, want.deformity)
    assert max(v.genant_grade for v in ref.vertebrae) >= 2  # the clear fracture (T11 wedge)
    assert truth.patient_fractured is True
    assert truth.study_instance_uid == verse_uids(CASE)["study"]


def test_centroid_file_agrees_with_the_mask(subject) -> None:
    check = subject["study"].truth.extra["centroid_check"]
    assert check["n"] == 5
    assert check["median_mm_to_vertebra_centroid"] < 0.5
    assert check["max_mm_to_vertebra_centroid"] < 0.5


def test_transitional_vertebra_is_not_a_record(subject, tmp_path) -> None:
    mask = subject["mask"].copy()
    mask[mask == LEVEL_INDEX["T12"] + 1] = 28  # call T12 a T13
    mask[mask == LEVEL_INDEX["T11"] + 1] = LEVEL_INDEX["T12"] + 1  # and T11 a T12
    path = tmp_path / "t13_seg-vert_msk.nii.gz"
    _write_nifti(path, mask, subject["aff"])
    _, truth = load_verse_case(VerseCase("t13", "t13", subject["case"].ct_path, path))
    assert [v.label for v in truth.vertebrae] == ["T12", "L1"]
    assert [t["label"] for t in truth.extra["transitional"]] == ["T13"]
    assert {"label": "T13", "reason": "transitional"}.items() <= next(
        p for p in truth.extra["partial"] if p["label"] == "T13"
    ).items()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "vertebra mask not found"),
        ("shifted", "grids differ: corners up to 2.000 mm"),
        ("cropped", "grids differ: shape"),
        ("empty", "no vertebra label"),
    ],
)
def test_bad_input_raises_input_error(subject, tmp_path, change, message) -> None:
    mask, aff = subject["mask"], subject["aff"].copy()
    path = tmp_path / "bad_seg-vert_msk.nii.gz"
    if change == "shifted":
        aff[:3, 3] += [0.0, 2.0, 0.0]
    elif change == "cropped":
        mask = mask[:-3]
    elif change == "empty":
        mask = np.zeros_like(mask)
    if change != "missing":
        _write_nifti(path, mask, aff)
    with pytest.raises(InputError, match=message):
        load_verse_case(VerseCase("bad", "bad", subject["case"].ct_path, path))


def test_converter_writes_truth_and_dicom(subject, tmp_path) -> None:
    out = tmp_path / "studies"
    assert main([str(subject["root"]), str(out), "--dicom"]) == 0
    truth = StudyRecord.load(out / CASE / "truth.json")
    want = subject["study"].truth
    assert [v.label for v in truth.vertebrae] == FULL_LEVELS
    np.testing.assert_allclose(
        np.array([v.keypoints for v in truth.vertebrae]), np.array([v.keypoints for v in want.vertebrae]), atol=1e-3
    )
    vol = load_study(out / CASE / "dicom")
    assert vol.info.study_instance_uid == truth.study_instance_uid
    ct = load_nifti(subject["case"].ct_path)
    np.testing.assert_allclose(vol.affine, ct.affine, atol=1e-3)
    np.testing.assert_array_equal(vol.array, ct.array)


def test_converter_reports_a_failed_case(tmp_path, capsys) -> None:
    (tmp_path / "sub-x_ct.nii.gz").write_bytes(b"")
    assert main([str(tmp_path), str(tmp_path / "out")]) == 3
    assert "vertebra mask not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- training data
@pytest.fixture(scope="module")
def detector_cfg(subject):
    cfg = load_config(REPO / "configs" / "detector.yaml")
    cfg.update(cprs_per_case=2, verse_root=str(subject["root"]), synthetic=False, verse_train=[SUBJECT], verse_val=[])
    return cfg


def test_item_keys_without_verse_keys_are_the_seed_ranges(detector_cfg) -> None:
    plain = {k: v for k, v in detector_cfg.items() if not k.startswith("verse") and k != "synthetic"}
    assert item_keys(plain) == (list(range(*plain["train_seeds"])), list(range(*plain["val_seeds"])))
    train, val = item_keys(detector_cfg)
    assert val == [] and len(train) == 1 and train[0].startswith("verse/") and train[0].endswith(f"/{CASE}")
    with_synth = dict(detector_cfg, synthetic=True, verse_train=None, verse_val=1.0)
    train2, val2 = item_keys(with_synth)
    assert train2 == list(range(*plain["train_seeds"])) and val2[:-1] == list(range(*plain["val_seeds"]))
    assert verse_split(dict(detector_cfg, verse_train=0.0, verse_val=[CASE])) == ([], [CASE])
    with pytest.raises(ValueError, match="unknown VerSe"):
        verse_split(dict(detector_cfg, verse_train=["sub-nobody"]))


def test_detector_items_from_a_verse_case(subject, detector_cfg) -> None:
    items = make_verse_detector_items(subject["study"], detector_cfg)
    assert len(items) == 2
    want = [LEVEL_INDEX[lev] for lev in FULL_LEVELS]
    for it in items:
        assert isinstance(it, DetectorItem)
        c, h, w = it.image.shape
        assert c == 2 and h % 32 == 0 and w % 32 == 0
        assert it.levels == want
        for kp in it.keypoints_px:
            assert kp.shape == (6, 2)
            assert np.all(kp >= 0) and np.all(kp[:, 0] < h) and np.all(kp[:, 1] < w)
            assert np.all(kp[:3, 0] < kp[3:, 0])  # superior keypoints above the inferior ones
        assert len(it.ignore_centers_px) == 2  # T10 and L2, cut by the field of view
        # 1 mm pixels along a nearly straight curve: pixel heights are the 3D heights.
        for kp, rec in zip(it.keypoints_px, subject["study"].truth.vertebrae, strict=True):
            assert np.linalg.norm(kp[4] - kp[1]) == pytest.approx(rec.heights_mm["middle"], abs=1.5)


def test_localizer_item_and_cache_from_a_verse_case(subject, detector_cfg, tmp_path) -> None:
    lcfg = load_config(REPO / "configs" / "localizer.yaml")
    item = make_verse_localizer_item(subject["study"], lcfg)
    x, t = item["image"], item["target"]
    assert x.shape == t.shape and all(s % 16 == 0 for s in x.shape)
    assert t.dtype == np.uint8 and 100 < int(t.sum()) < 0.2 * t.size
    assert float(x[t > 0].astype(np.float32).mean()) > float(x[t == 0].astype(np.float32).mean()) + 0.1
    # Bodies and the discs between them are in the column (grid of spinevcf.localizer.preprocess).
    grid_aff, _ = grid_affine_for(subject["study"].ct, float(lcfg["model_config"]["spacing_mm"]))
    centres = {v.label: v.center for v in subject["study"].truth.vertebrae}
    for p in (centres["T12"], 0.5 * (centres["T11"] + centres["T12"]), 0.5 * (centres["T12"] + centres["L1"])):
        i = np.rint(np.linalg.solve(grid_aff[:3, :3], p - grid_aff[:3, 3])).astype(int)
        assert t[tuple(i)] == 1
    # Cache round trip of the detector items under the VerSe key.
    cfg = dict(detector_cfg, cache_dir=str(tmp_path / "cache"), cprs_per_case=1)
    keys, _ = item_keys(cfg)
    build_cache("detector", tmp_path / "cache", keys, cfg, workers=1)
    assert _cache_path(tmp_path / "cache", "detector", keys[0]).is_file()
    (loaded,) = load_detector_items(tmp_path / "cache", keys)
    assert loaded.levels == [LEVEL_INDEX[lev] for lev in FULL_LEVELS]
