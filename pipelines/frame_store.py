"""Per-frame arrays of a long clip kept in a temporary file instead of memory (`FrameFile`).

A clip over the decode's frame budget keeps its reduced copy (0.39 MB a 480x270 frame) and the background
detector's masks here, so a sequence's peak memory does not grow with its length: a 180 s 1080p clip's reduced
copy alone is 2.1 GB. The file is created unlinked (nothing is left behind, even after SIGKILL) in the run's
folder when the runner gives one (a /tmp on tmpfs would hold it in memory again).

Owns: the file and its reads and writes. Does not own: when to spill (`decode.decode_clip`'s frame budget) or
what the arrays mean (`detect`, `segment`).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

CHUNK_FRAMES = 256  # frames read at once by the whole-clip passes over a FrameFile (about 100 MB at 480x270)


class FrameFile:
    """A (T, *frame_shape) array of `dtype` in an unlinked temporary file, written and read a frame at a time
    (os.pwrite/os.pread: safe across threads). `packed` stores bool frames bit-packed (an eighth of the bytes).

    Indexing takes what the sequence stages use: a position, a slice, or a list/array of positions, optionally
    followed by indexes inside the frames (`images[3, y0:y1]`); it returns numpy arrays (copies). Assigning
    takes one position. Whole-clip passes read `chunks()`: `self[:]` (or np.asarray) loads every frame."""

    def __init__(self, frame_shape: tuple[int, ...], dtype, count: int = 0, folder: str | Path | None = None,
                 packed: bool = False):
        self.frame_shape, self.dtype = tuple(int(n) for n in frame_shape), np.dtype(dtype)
        if packed and self.dtype != np.bool_:
            raise TypeError(f"FrameFile: packed frames must be bool, got {self.dtype}")
        self.packed = packed
        self._values = int(np.prod(self.frame_shape))
        self._frame_bytes = (self._values + 7) // 8 if packed else self._values * self.dtype.itemsize
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._file = tempfile.TemporaryFile(prefix="ragar-frames-", dir=folder)
        self.count = int(count)
        os.ftruncate(self._file.fileno(), self.count * self._frame_bytes)  # unwritten frames read as zeros

    @classmethod
    def like(cls, reference, frame_shape: tuple[int, ...], dtype, packed: bool = False):
        """A per-frame array with as many frames as `reference`: a FrameFile beside it when `reference` is one,
        else an empty numpy array (short clips stay in memory)."""
        count = len(reference)
        if isinstance(reference, FrameFile):
            return cls(frame_shape, dtype, count, reference.folder, packed)
        return np.empty((count,) + tuple(frame_shape), dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.count,) + self.frame_shape

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    @property
    def size(self) -> int:
        return self.count * self._values

    def __len__(self) -> int:
        return self.count

    def append(self, frame: np.ndarray) -> None:
        self.count += 1
        self[self.count - 1] = frame

    def __setitem__(self, position, frame: np.ndarray) -> None:
        position = self._position(position)
        frame = np.asarray(frame)
        if frame.shape != self.frame_shape:
            raise ValueError(f"FrameFile: frame of shape {frame.shape}, expected {self.frame_shape}")
        data = np.packbits(frame.astype(bool, copy=False)) if self.packed else \
            np.ascontiguousarray(frame, dtype=self.dtype)
        os.pwrite(self._file.fileno(), data.tobytes(), position * self._frame_bytes)

    def __getitem__(self, key) -> np.ndarray:
        inner = ()
        if isinstance(key, tuple):
            key, inner = key[0], key[1:]
        if isinstance(key, (int, np.integer)):
            frame = self._read(self._position(key))
            return frame[inner] if inner else frame
        if isinstance(key, slice):
            positions = range(*key.indices(self.count))
        elif isinstance(key, (list, np.ndarray)) and np.asarray(key).dtype.kind in "iu":
            positions = [self._position(p) for p in np.asarray(key).ravel()]
        else:
            raise TypeError(f"FrameFile: index frames by a position, a slice or positions, not {key!r}")
        frames = np.empty((len(positions),) + self.frame_shape, self.dtype)
        for row, position in enumerate(positions):
            self._read(position, into=frames[row])
        return frames[(slice(None),) + inner] if inner else frames

    def __iter__(self):
        return (self._read(position) for position in range(self.count))

    def chunks(self, frames: int = CHUNK_FRAMES):
        """Consecutive blocks of at most `frames` frames, as arrays."""
        return (self[start:start + frames] for start in range(0, self.count, frames))

    def close(self) -> None:
        self._file.close()

    def _position(self, position) -> int:
        index = int(position) + (self.count if position < 0 else 0)
        if not 0 <= index < self.count:
            raise IndexError(f"FrameFile: frame {position} out of range for {self.count} frames")
        return index

    def _read(self, position: int, into: np.ndarray | None = None) -> np.ndarray:
        """Frame `position`, read into `into` (a C-contiguous frame) when given."""
        packed = self.packed
        target = np.empty(self._frame_bytes, np.uint8) if packed or into is None else into
        done = os.preadv(self._file.fileno(), [memoryview(target).cast("B")], position * self._frame_bytes)
        if done != self._frame_bytes:
            raise OSError(f"FrameFile: short read of frame {position} ({done} of {self._frame_bytes} bytes)")
        if packed:
            frame = np.unpackbits(target, count=self._values).view(bool).reshape(self.frame_shape)
            if into is None:
                return frame
            into[...] = frame
            return into
        return target.view(self.dtype).reshape(self.frame_shape) if into is None else into
