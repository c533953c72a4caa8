"""Benchmark of the x2ct DRR projector (speed and accuracy), optionally against nanodrr's torch backend.

Measures, on a smooth random blob volume in attenuation units (1/mm):

* CPU: ms per 128 x 128 cone-beam view at 256 samples per ray for each method (trilinear, joseph), averaged
  over repeats after a warm-up, plus the one-off ray-plan time;
* accuracy of each method against a 2048-sample trilinear reference (relative L2 and max error);
* nanodrr (torch backend, CPU) on the same volume, image size, samples per ray and SID/SOD, run through a
  throwaway virtualenv's python in a subprocess (skipped with a note when that venv is missing);
* CUDA (when available): DRR/s at 200 x 200 with batched views and volumes.

Prints a summary and writes ``benchmarks/results/drr_<hostname>.json``.
Usage: ``python benchmarks/bench_drr.py [--repeats 5] [--nanodrr-python /tmp/nanodrr-venv/bin/python]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from x2ct.drr import ViewSpec, build_projector
from x2ct.drr.geometry import volume_centre_mm
from x2ct.drr.physics import MU_WATER_70KEV_PER_MM
from x2ct.utils.machine import describe_machine

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_NANODRR_PYTHON = "/tmp/nanodrr-venv/bin/python"
METHODS = ("trilinear", "joseph")
SID_MM, SOD_MM = 1000.0, 850.0
REFERENCE_SAMPLES = 2048
BLOB_SIGMA_VOXELS = 4.0
PHANTOM_HU_RANGE = (-1000.0, 1500.0)
AIR_HU, SOFT_HU, BONE_HU = -1000.0, 40.0, 1200.0
BONE_THRESHOLD_SD, SOFT_THRESHOLD_SD = 1.2, -0.5
TISSUE_NOISE_HU = 20.0
GPU_DETECTOR = 200
GPU_BATCH_VOLUMES = 16
AP = ViewSpec("xray1", 0.0)
LATERAL = ViewSpec("xray2", 90.0, lateral=True)
LATERAL_75 = ViewSpec("xray2_075", 75.0, lateral=True)
CPU_VIEWS = (AP, LATERAL, LATERAL_75)
# nanodrr's camera built in the worker sits posterior (a PA view); our 180-degree view is the same projection.
NANODRR_MATCHING_VIEW = ViewSpec("pa", 180.0)

# Runs inside the nanodrr virtualenv: argv = volume.npy, spacing (3 floats), size, samples, sid, sod, repeats,
# threads, out.npy. Prints one JSON line.
NANODRR_WORKER = r"""
import json, sys, time
import numpy as np, torch, torchio as tio
from nanodrr.camera import make_rt_inv
from nanodrr.data import Subject
from nanodrr.drr import DRR

path, sd, sh, sw, size, samples, sid, sod, repeats, threads, out = sys.argv[1:]
size, samples, repeats, threads = int(size), int(samples), int(repeats), int(threads)
sd, sh, sw, sid, sod = map(float, (sd, sh, sw, sid, sod))
torch.set_num_threads(threads)
mu = np.load(path).astype(np.float32)  # (D, H, W)
# torchio stores (C, I, J, K); nanodrr reads it as (1, 1, K, J, I): pass I = W, J = H, K = D.
image = tio.ScalarImage(tensor=torch.from_numpy(mu).permute(2, 1, 0)[None].contiguous(),
                        affine=np.diag([sw, sh, sd, 1.0]))
subject = Subject.from_images(image, convert_to_mu=False)
pitch = sw * sid / sod  # detector pixel so that the iso-plane pitch equals the voxel spacing
drr = DRR.from_carm_intrinsics(sdd=sid, delx=pitch, dely=pitch, x0=0.0, y0=0.0, height=size, width=size)
rt_inv = make_rt_inv(torch.zeros(1, 3), torch.tensor([[0.0, sod, 0.0]]), "AP", subject.isocenter)
with torch.no_grad():
    drr(subject, rt_inv, n_samples=samples, backend="torch")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        img = drr(subject, rt_inv, n_samples=samples, backend="torch")
        times.append(time.perf_counter() - start)
    reference = drr(subject, rt_inv, n_samples=2048, backend="torch")
img, reference = img[0, 0].numpy(), reference[0, 0].numpy()
np.save(out, img)
from importlib.metadata import version
print(json.dumps({
    "nanodrr_version": version("nanodrr"),
    "torch_version": torch.__version__,
    "threads": torch.get_num_threads(),
    "ms_per_view_mean": 1000 * float(np.mean(times)),
    "ms_per_view_median": 1000 * float(np.median(times)),
    "rel_l2_vs_own_2048": float(np.linalg.norm(img - reference) / np.linalg.norm(reference)),
    "rel_max_vs_own_2048": float(np.abs(img - reference).max() / np.abs(reference).max()),
}))
"""


def blob_phantom_mu(size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random blob volume (size^3) in 1/mm: blurred noise mapped to PHANTOM_HU_RANGE, then to mu."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal((size, size, size)), BLOB_SIGMA_VOXELS)
    field = (field - field.min()) / (field.max() - field.min())
    hu = PHANTOM_HU_RANGE[0] + field * (PHANTOM_HU_RANGE[1] - PHANTOM_HU_RANGE[0])
    return torch.tensor(MU_WATER_70KEV_PER_MM * (1.0 + hu / 1000.0), dtype=torch.float32)


def tissue_class_phantom_mu(size: int, seed: int = 0) -> torch.Tensor:
    """Sharp-edged volume (size^3) in 1/mm: blurred noise thresholded into air / soft tissue / bone plus
    TISSUE_NOISE_HU noise, like a CT's hard bone edges (harder for ray sampling than smooth blobs)."""
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.standard_normal((size, size, size)), BLOB_SIGMA_VOXELS)
    field /= field.std()
    hu = np.where(field > BONE_THRESHOLD_SD, BONE_HU, np.where(field > SOFT_THRESHOLD_SD, SOFT_HU, AIR_HU))
    hu = np.clip(hu + rng.normal(0.0, TISSUE_NOISE_HU, hu.shape), AIR_HU, None)
    return torch.tensor(MU_WATER_70KEV_PER_MM * (1.0 + hu / 1000.0), dtype=torch.float32)


def time_call(fn: Callable[[], object], repeats: int, synchronize: bool = False) -> dict:
    """Seconds per call (mean, median, min) after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if synchronize:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if synchronize:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"mean_s": statistics.mean(times), "median_s": statistics.median(times), "min_s": min(times)}


def relative_errors(image: np.ndarray, reference: np.ndarray) -> dict:
    return {
        "rel_l2": float(np.linalg.norm(image - reference) / np.linalg.norm(reference)),
        "rel_max": float(np.abs(image - reference).max() / np.abs(reference).max()),
    }


def _projector(shape: tuple, spacing: tuple, views: list, n_samples: int, method: str):
    return build_projector(shape, spacing, views, geometry="cone", sod_mm=SOD_MM, n_samples=n_samples, method=method)


def bench_cpu(phantoms: dict[str, torch.Tensor], spacing: tuple, n_samples: int, repeats: int) -> dict:
    """Per-method CPU timing (on the first phantom) and accuracy vs a 2048-sample trilinear reference (on each
    phantom), for the views CPU_VIEWS rendered together."""
    views = list(CPU_VIEWS)
    results: dict = {}
    with torch.no_grad():
        references = {}
        for name, mu in phantoms.items():
            projector = _projector(tuple(mu.shape), spacing, views, REFERENCE_SAMPLES, "trilinear")
            references[name] = [img[0].numpy() for img in projector(mu[None])]
            del projector
        timing_phantom = next(iter(phantoms.values()))
        shape = tuple(timing_phantom.shape)
        for method in METHODS:
            start = time.perf_counter()
            projector = _projector(shape, spacing, views, n_samples, method)
            plan_s = time.perf_counter() - start
            timing = time_call(lambda p=projector: p(timing_phantom[None]), repeats)
            accuracy = {}
            for name, mu in phantoms.items():
                images = projector(mu[None])
                accuracy[name] = {
                    v.name: relative_errors(img[0].numpy(), ref)
                    for v, img, ref in zip(views, images, references[name], strict=True)
                }
            results[method] = {
                "ms_per_view_mean": 1000 * timing["mean_s"] / len(views),
                "ms_per_view_median": 1000 * timing["median_s"] / len(views),
                "ms_per_view_min": 1000 * timing["min_s"] / len(views),
                "plan_ms": 1000 * plan_s,
                "samples_per_ray": n_samples if method == "trilinear" else "one per voxel plane",
                "accuracy_vs_trilinear_2048": accuracy,
            }
    return results


def best_dihedral_correlation(image: np.ndarray, reference: np.ndarray) -> dict:
    """Highest pixel correlation of ``image`` with ``reference`` over flips/transposes (orientation check)."""
    best = {"correlation": -1.0, "transform": ""}
    for transpose in (False, True):
        base = image.T if transpose else image
        for flip_rows in (False, True):
            for flip_cols in (False, True):
                candidate = base[::-1] if flip_rows else base
                candidate = candidate[:, ::-1] if flip_cols else candidate
                corr = float(np.corrcoef(candidate.ravel(), reference.ravel())[0, 1])
                if corr > best["correlation"]:
                    name = f"transpose={transpose},flip_rows={flip_rows},flip_cols={flip_cols}"
                    best = {"correlation": corr, "transform": name}
    return best


def bench_nanodrr(mu: torch.Tensor, spacing: tuple, n_samples: int, repeats: int, python: str) -> dict:
    """nanodrr torch backend in its own venv, one cone-beam view, same volume/size/samples/SID/SOD; its image
    is checked against our 2048-sample view of the same projection (NANODRR_MATCHING_VIEW)."""
    if not Path(python).exists():
        return {"skipped": f"nanodrr venv python {python} not found (see the module docstring to create it)"}
    with tempfile.TemporaryDirectory() as tmp:
        volume_path, image_path, worker = Path(tmp) / "mu.npy", Path(tmp) / "nanodrr.npy", Path(tmp) / "worker.py"
        np.save(volume_path, mu.numpy())
        worker.write_text(NANODRR_WORKER)
        size = mu.shape[2]
        args = [python, str(worker), str(volume_path), *map(str, spacing), str(size), str(n_samples)]
        args += [str(SID_MM), str(SOD_MM), str(repeats), str(torch.get_num_threads()), str(image_path)]
        completed = subprocess.run(args, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            return {"skipped": f"nanodrr worker failed: {completed.stderr.strip()[-2000:]}"}
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        image = np.load(image_path)
    with torch.no_grad():
        projector = _projector(tuple(mu.shape), spacing, [NANODRR_MATCHING_VIEW], REFERENCE_SAMPLES, "trilinear")
        ours = projector(mu[None])[0][0].numpy()
    result["geometry_check_vs_ours_2048"] = {
        "our_view": f"{NANODRR_MATCHING_VIEW.angle_deg} deg (source posterior)",
        **best_dihedral_correlation(image, ours),
    }
    return result


def bench_batched_throughput(
    size: int,
    n_samples: int,
    repeats: int,
    device: torch.device,
    detector: int = GPU_DETECTOR,
    batch_volumes: int = GPU_BATCH_VOLUMES,
) -> dict:
    """DRR/s at detector^2 (iso-plane FOV = the volume): batch_volumes volumes x 2 views per call, per method."""
    volumes = torch.stack([blob_phantom_mu(size, seed) for seed in range(batch_volumes)]).to(device)
    spacing = (1.0, 1.0, 1.0)
    pitch = size / detector
    views = [AP, LATERAL]
    results = {}
    with torch.no_grad():
        for method in METHODS:
            projector = build_projector(
                (size, size, size),
                spacing,
                views,
                volume_centre_mm((size, size, size), spacing),
                geometry="cone",
                sod_mm=SOD_MM,
                n_samples=n_samples,
                method=method,
                detector_shape=(detector, detector),
                detector_pitch_mm=(pitch, pitch),
                device=device,
            )
            timing = time_call(lambda p=projector: p(volumes), repeats, synchronize=device.type == "cuda")
            n_images = batch_volumes * len(views)
            results[method] = {
                "drr_per_s_median": n_images / timing["median_s"],
                "drr_per_s_mean": n_images / timing["mean_s"],
                "images_per_call": n_images,
                "detector": [detector, detector],
                "volume": [size] * 3,
            }
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="volume and detector size (cube)")
    parser.add_argument("--samples", type=int, default=256, help="samples per ray (trilinear, nanodrr)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nanodrr-python", default=DEFAULT_NANODRR_PYTHON)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    spacing = (1.0, 1.0, 1.0)
    phantoms = {"smooth_blobs": blob_phantom_mu(args.size), "tissue_classes": tissue_class_phantom_mu(args.size)}
    report = {
        "machine": describe_machine(),
        "setup": {
            "volume": [args.size] * 3,
            "spacing_mm": list(spacing),
            "detector": [args.size, args.size],
            "geometry": "cone",
            "sid_mm": SID_MM,
            "sod_mm": SOD_MM,
            "samples_per_ray": args.samples,
            "reference_samples": REFERENCE_SAMPLES,
            "repeats": args.repeats,
            "views": [f"{v.name} ({v.angle_deg} deg)" for v in CPU_VIEWS],
            "timing": "views rendered together on the smooth_blobs phantom, reported per view",
        },
    }
    report["cpu"] = bench_cpu(phantoms, spacing, args.samples, args.repeats)
    report["nanodrr_cpu"] = bench_nanodrr(
        phantoms["smooth_blobs"], spacing, args.samples, args.repeats, args.nanodrr_python
    )
    nano_ms = report["nanodrr_cpu"].get("ms_per_view_median")
    if nano_ms:
        report["ratio_ours_over_nanodrr"] = {m: report["cpu"][m]["ms_per_view_median"] / nano_ms for m in METHODS}
    if torch.cuda.is_available():
        report["cuda"] = bench_batched_throughput(args.size, args.samples, args.repeats, torch.device("cuda"))
    else:
        report["cuda"] = {"skipped": "no CUDA device"}

    args.out_dir.mkdir(parents=True, exist_ok=True)
    out_path = args.out_dir / f"drr_{socket.gethostname()}.json"
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"saved {out_path}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
