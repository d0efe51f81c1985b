"""Bundled models: names that every command taking a checkpoint accepts (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tgv_deploy.errors import InputError

#: name -> one-line description; the files are ``tgv_deploy/bundled/<name>.pt`` and ``<name>.md``.
BUNDLED: dict[str, str] = {
    "utgv-mri": "U-TGV, single-coil Cartesian MRI (the default)",
    "utv-mri": "U-TV, single-coil Cartesian MRI (comparison)",
    "utgv-denoise": "U-TGV, denoising of real-valued images",
}
DEFAULT_MODEL = "utgv-mri"


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
    """A bundled name or a path -> an existing file path; raises :class:`InputError` otherwise."""
    if name_or_path in BUNDLED:
        model = next(m for m in bundled_models() if m.name == name_or_path)
        if not model.available:
            raise InputError(f"bundled model {name_or_path!r} is not installed in this package")
        return model.checkpoint
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix == "":
        raise InputError(f"unknown model {name_or_path!r}: not a bundled name ({', '.join(BUNDLED)}) and no such file")
    raise InputError(f"model file not found: {path}")
