"""How the extraction stages use the cores: the process settings applied around a run (`extraction_settings`,
process-wide, put back after) and the per-frame thread map of the sequence stages (`map_frames`).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import cv2


@contextmanager
def extraction_settings():
    """OpenCV's thread pool off while the stages run: they already overlap decoding, detection and the
    segmenter's threads (or worker processes), and OpenCV splitting each call on top of that cost CPU without
    speed (benchmarks/extract_throughput.py, 2 cores: 0.37 -> 0.41 of rgb24 decode-only, median of 4 rounds).
    Restored afterwards."""
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def map_frames(function, *iterables, threads: int, name: str) -> list:
    """function over a sequence's frames on `threads` threads, results in order (the same as a plain loop).
    The per-frame work of the sequence stages is OpenCV and numpy, which release the GIL."""
    if threads <= 1:
        return list(map(function, *iterables))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name) as pool:
        return list(pool.map(function, *iterables))
