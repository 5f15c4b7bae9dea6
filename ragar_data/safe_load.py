"""Loading pickled files without running code from them: every pickle and torch checkpoint the project reads
goes through one of the two loaders here.

- `load_array_pickle`: OpenGait's pickles (numpy arrays, plain containers). A `pickle.Unpickler` whose
  `find_class` admits only numpy's array and scalar reconstruction (under numpy 1's `numpy.core` and numpy 2's
  `numpy._core` names); any other global (`os.system`, `builtins.eval`, a class) is refused before anything
  is called, and object dtypes are refused, so nothing but numbers comes out.
- `load_torch_checkpoint`: `torch.load(weights_only=True)` with the few numpy globals that upstream training
  scripts leave in checkpoint dicts (MotionBERT's `min_loss` is a numpy float64).

Does not own what the arrays must look like: callers check dtype and shape.
"""
from __future__ import annotations

import codecs
import pickle
import re
from pathlib import Path

import numpy as np

from ragar_data.errors import RagarDataError

try:
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric


class UnsafePickleError(RagarDataError):
    """A pickle asked for something other than plain data (a function, a class, an object array)."""


def _plain_dtype(*args) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UnsafePickleError(f"object dtype {dtype} (arrays of Python objects are not data)")
    return dtype


def _checked(dtype) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"expected a plain numpy dtype, found {type(dtype).__name__} {dtype!r}")
    return dtype


def _reconstruct(subtype, shape, typecode):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"array subclass {subtype!r}")
    return _multiarray._reconstruct(np.ndarray, shape, typecode)


def _frombuffer(buffer, dtype, shape, order):
    return _numeric._frombuffer(buffer, _checked(dtype), shape, order)


def _scalar(dtype, data=None):
    if not isinstance(data, bytes):
        raise UnsafePickleError(f"numpy scalar from {type(data).__name__}, expected bytes")
    return _multiarray.scalar(_checked(dtype), data)


def _latin1_encode(text, encoding="latin1"):
    # how protocols 0-2 store bytes: _codecs.encode(str, "latin1"); other codecs are not needed
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


_ARRAY_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _core in ("numpy.core", "numpy._core"):  # numpy 1.x and 2.x write different module names
    _ARRAY_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _ARRAY_GLOBALS[(f"{_core}.multiarray", "scalar")] = _scalar
    _ARRAY_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _frombuffer


class ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and plain containers only."""

    def find_class(self, module: str, name: str):
        allowed = _ARRAY_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafePickleError(f"refused global {module}.{name} (only numpy arrays and plain containers "
                                    "are loaded from pickles)")
        return allowed


def load_array_pickle(path: str | Path):
    """The content of pickle file `path` (numpy arrays, scalars, lists, dicts, ...); raises `UnsafePickleError`
    naming the file and the refused global before anything runs, `RagarDataError` for a damaged file."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return ArrayUnpickler(handle).load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: not loaded: {error}") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, MemoryError) as error:
        raise RagarDataError(f"{path}: cannot unpickle ({type(error).__name__}: {error})") from error


def _numpy_scalar_globals() -> list:
    """numpy scalars in a checkpoint dict, as written by numpy 1.x and 2.x (`scalar` + its dtype)."""
    import numpy.dtypes

    scalar = _multiarray.scalar
    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype,
            numpy.dtypes.Float64DType, numpy.dtypes.Float32DType, numpy.dtypes.Int64DType]


def load_torch_checkpoint(path: str | Path, allow_numpy_scalars: bool = True):
    """`torch.load(path, weights_only=True)` on CPU; with `allow_numpy_scalars`, numpy float/int scalars are
    admitted too. Anything else a pickle asks for raises `UnsafePickleError` naming the file; nothing runs."""
    import torch

    path = Path(path)
    extra = _numpy_scalar_globals() if allow_numpy_scalars else []
    try:
        with torch.serialization.safe_globals(extra):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafePickleError(f"{path}: not loaded: the checkpoint holds more than tensors and plain values "
                                f"({_refusal(error)}); ragar-data loads weights with torch.load(weights_only=True) "
                                "only") from None
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise RagarDataError(f"{path}: cannot read the checkpoint ({type(error).__name__}: {error})") from error


def _refusal(error: Exception) -> str:
    """The global torch refused, out of its long message (which also advises weights_only=False: not here)."""
    match = re.search(r"GLOBAL (\S+)", str(error))
    if match:
        return f"refused global {match[1]}"
    advice = ("Weights only load failed", "(1)", "(2)", "Check the documentation")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return next((line for line in lines if not line.startswith(advice)), lines[0] if lines else type(error).__name__)
