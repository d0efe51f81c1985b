"""Bundled models: names that every command taking a checkpoint accepts (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tgv_deploy.contract import sha256_file
from tgv_deploy.errors import InputError, IntegrityError

#: name -> one-line description; the files are ``tgv_deploy/bundled/<name>.pt`` and ``<name>.md``.
BUNDLED: dict[str, str] = {
    "utgv-mri": "U-TGV, Cartesian MRI, single- and multi-coil (the default)",
    "utv-mri": "U-TV, Cartesian MRI, single- and multi-coil (comparison)",
    "utgv-denoise": "U-TGV, denoising of real-valued images",
    "utgv-mri-pdhg": "U-TGV, MRI, PDHG (SPEC 2): the previous default, kept for comparisons",
}
DEFAULT_MODEL = "utgv-mri"

#: name -> known-good SHA-256 of ``tgv_deploy/bundled/<name>.pt``, checked whenever a bundled name
#: is resolved. The one place to update when a bundled checkpoint is replaced (a test compares it
#: with the files and prints the new value).
BUNDLED_SHA256: dict[str, str] = {
    "utgv-mri": "fa5f20cb9122a8656e82aaebd14812fa2e8106ca1ae270a231a5e9887d17494c",
    "utv-mri": "472b9cbb8bdc999ba0a4e8aeef61dc41e65e5797ad481661cd90aae119483f2d",
    "utgv-denoise": "f63b42f8ac649add0f8af33250935bfa5fb6af017096cdca290609cc22dd9af6",
    "utgv-mri-pdhg": "2c82ae08de6705c6522bd34b60fd0e2ba7b687330af8d369c917bb782aca3373",
}


@dataclass(frozen=True)
class BundledModel:
    name: str
    description: str
    checkpoint: Path
    card: Path

    @property
    def available(self) -> bool:
        return self.checkpoint.is_file()


def bundled_dir() -> Path:
    return Path(str(resources.files("tgv_deploy") / "bundled"))


def bundled_models() -> list[BundledModel]:
    root = bundled_dir()
    return [BundledModel(n, d, root / f"{n}.pt", root / f"{n}.md") for n, d in BUNDLED.items()]


def resolve_model(name_or_path: str) -> Path:
    """A bundled name or a path -> an existing file path; raises :class:`InputError` otherwise.

    A bundled checkpoint must match its known-good SHA-256 (:data:`BUNDLED_SHA256`), else
    :class:`IntegrityError`: checkpoints are unpickled, and an installed package can be altered.
    """
    if name_or_path in BUNDLED:
        model = next(m for m in bundled_models() if m.name == name_or_path)
        if not model.available:
            raise InputError(f"bundled model {name_or_path!r} is not installed in this package")
        actual = sha256_file(model.checkpoint)
        if actual != BUNDLED_SHA256.get(name_or_path):
            raise IntegrityError(
                f"bundled model {name_or_path!r}: {model.checkpoint} has SHA-256 {actual}, not the known-good one "
                "this package lists (modified or corrupt installation: reinstall tgv-deploy)"
            )
        return model.checkpoint
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix == "":
        raise InputError(f"unknown model {name_or_path!r}: not a bundled name ({', '.join(BUNDLED)}) and no such file")
    raise InputError(f"model file not found: {path}")
