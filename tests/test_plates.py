"""Camera plates where one subject's sequences all start with the subject standing at the same mark."""
from __future__ import annotations

import numpy as np

from ragar_data.pipelines.plates import plate_from_samples


def standing_starts():
    """(32, 64, 64, 3) samples of 4 sequences, the background and the walkers' regions. Subject A (sequences 0
    and 1, red) stands over columns 24-40 in every sample, subject B (2 and 3, blue) over columns 28-36: beside
    B, the background is seen by half the sequences only."""
    y, x = np.mgrid[0:64, 0:64]
    stripes = 40 * ((x // 2) % 2)  # texture that inpainting cannot make up
    background = np.stack([60 + y + stripes, 100 + x // 2, 80 + stripes], axis=-1).astype(np.uint8)
    rng = np.random.default_rng(0)
    samples = np.repeat(background[None], 32, axis=0).astype(np.int16) + rng.integers(-2, 3, (32, 64, 64, 3))
    samples[:16, 16:40, 24:40] = (200, 40, 40)
    samples[16:, 16:40, 28:36] = (40, 40, 200)
    sequences = np.repeat(np.arange(4), 8)
    return np.clip(samples, 0, 255).astype(np.uint8), background, sequences, np.where(sequences < 2, "A", "B")


def distance(image, colour):
    return np.sqrt(((image.astype(np.float32) - np.float32(colour)) ** 2).mean(axis=-1))


def test_a_standing_start_shared_by_one_subjects_sequences_is_not_background():
    samples, background, sequences, subjects = standing_starts()
    plain = plate_from_samples(samples)
    assert (distance(plain[16:40, 24:40], (200, 40, 40)) < 14).mean() > 0.9  # the mode alone: A's body
    plate = plate_from_samples(samples, sequences=sequences, subjects=subjects)
    walkers = plate[16:40, 28:36]  # nobody sees the background here: inpainted, neither walker
    assert (distance(walkers, (200, 40, 40)) > 40).all() and (distance(walkers, (40, 40, 200)) > 40).all()
    # seen by B's sequences only (the pixel next to the inpainted region is inpainted too)
    beside = np.concatenate([plate[20:36, 24:27], plate[20:36, 37:40]], axis=1)
    truth = np.concatenate([background[20:36, 24:27], background[20:36, 37:40]], axis=1)
    assert (np.sqrt(((beside.astype(np.float32) - truth) ** 2).mean(axis=-1)) < 6).all()
    outside = np.ones((64, 64), bool)
    outside[12:44, 20:44] = False
    assert np.abs(plate.astype(int) - background)[outside].max() <= 3  # elsewhere as before
    assert np.array_equal(plate, plate_from_samples(samples, sequences=sequences, subjects=subjects))  # deterministic
