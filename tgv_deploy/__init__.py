"""tgv-deploy: learned spatially varying TGV reconstruction, exported for deployment.

The mathematics follows Vu, Kofler and Papafitsoros (2025); see ``docs/`` for the conventions.
Only light, torch-free modules are imported here so that :mod:`tgv_deploy.runtime` works
without torch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tgv-deploy")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
