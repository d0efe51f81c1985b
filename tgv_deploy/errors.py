"""One error hierarchy for everything a user can get wrong.

The CLI turns a :class:`TgvDeployError` into one line on stderr and its ``exit_code``, and an
``OSError`` (a full disk, a failing device) into one line naming the file and exit 1; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class TgvDeployError(Exception):
    """Base class of all user-facing errors."""

    exit_code = 1


class InputError(TgvDeployError, ValueError):
    """Bad user input: wrong shape, dtype, NaN values, missing file or dataset."""

    exit_code = 3


class ContractError(TgvDeployError):
    """An input, engine or file does not match the model's contract."""

    exit_code = 4


class IntegrityError(TgvDeployError):
    """A file's content does not match its recorded checksum, or is not what it claims to be."""

    exit_code = 5


class BackendUnavailableError(TgvDeployError):
    """A requested backend (torch, onnxruntime, TensorRT, CUDA) is not installed or not active."""

    exit_code = 2
