"""Process settings for the time extraction stages run. Process-wide; `extraction_settings` applies them around
a run and puts them back after.
"""
from __future__ import annotations

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
