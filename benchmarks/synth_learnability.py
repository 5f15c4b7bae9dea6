"""Are the synthetic attributes learnable? A simple classifier on normalised ground-truth silhouettes.

    python benchmarks/synth_learnability.py [--subjects 48] [--folds 4] [--views 0,36,72,108,144,180]

Renders the ground-truth masks of every subject x combination x condition x view (no video), normalises them
with `ragar_data.silhouettes` (OpenGait pretreatment, 64x64 cut to 64x44), and describes each sequence by
its gait-energy image, its temporal standard deviation image (both 32x22) and the low-frequency spectrum of
the silhouette's width and centroid over time (gait rhythm, limp asymmetry). One linear softmax head per
attribute and view (torch, full batch, weight decay; the same body looks different from each camera, and a
linear model shared by all views must spend its capacity on that) is trained on some subjects and tested on
held-out subjects, in k-fold cross-validation over subjects (every subject is tested once by a model that never
saw it). `--shared-views` trains one model for all views instead.
Prints per-attribute accuracy against the majority-class rate (the training folds' majority class) and
balanced accuracy (mean per-class recall) against 1/K.
"""
from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np

FRAMES_FOR_SPECTRUM = 32


def sequence_features(job) -> np.ndarray:
    import warnings

    import cv2

    from ragar_data.identity import SequenceKey
    from ragar_data.silhouettes import cut_width, normalise_sequence
    from ragar_data.synth import render_masks

    cv2.setNumThreads(1)
    config, key = job
    masks = render_masks(config, SequenceKey(*key))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        silhouettes, _ = normalise_sequence(masks, 64)
    silhouettes = cut_width(silhouettes).astype(np.float32) / 255.0  # (S, 64, 44)
    if len(silhouettes) < 4:
        return np.zeros(2 * 32 * 22 + 2 * (FRAMES_FOR_SPECTRUM // 2), np.float32)
    small = np.stack([cv2.resize(s, (22, 32), interpolation=cv2.INTER_AREA) for s in silhouettes])
    energy, spread = small.mean(axis=0), small.std(axis=0)
    columns = silhouettes.sum(axis=1) > 0  # (S, 44)
    width = columns.sum(axis=1) / 44.0
    centroid = (silhouettes.sum(axis=1) * np.arange(44)).sum(axis=1) / np.maximum(silhouettes.sum(axis=(1, 2)), 1)
    spectra = []
    for signal in (width, centroid / 44.0):
        signal = np.resize(signal - signal.mean(), FRAMES_FOR_SPECTRUM)
        spectra.append(np.abs(np.fft.rfft(signal))[1:FRAMES_FOR_SPECTRUM // 2 + 1] / FRAMES_FOR_SPECTRUM)
    return np.concatenate([energy.ravel(), spread.ravel(), *spectra]).astype(np.float32)


def train_heads(features, labels, num_classes, weight_decay, steps=400):
    import torch

    torch.manual_seed(0)
    x = torch.from_numpy(features)
    heads = [torch.nn.Linear(x.shape[1], k) for k in num_classes]
    parameters = [p for head in heads for p in head.parameters()]
    optimiser = torch.optim.Adam(parameters, lr=1e-2, weight_decay=weight_decay)
    y = torch.from_numpy(labels.astype(np.int64))
    for _ in range(steps):
        optimiser.zero_grad()
        loss = sum(torch.nn.functional.cross_entropy(head(x), y[:, i]) for i, head in enumerate(heads))
        loss.backward()
        optimiser.step()
    return heads


def predict(heads, features):
    import torch

    with torch.no_grad():
        x = torch.from_numpy(features)
        return np.stack([head(x).argmax(1).numpy() for head in heads], axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=48)
    parser.add_argument("--folds", type=int, default=4, help="Cross-validation folds over subjects.")
    parser.add_argument("--views", default="0,36,72,108,144,180")
    parser.add_argument("--conditions", default="nm-01,bg-01,cl-01")
    parser.add_argument("--seconds", type=float, default=1.2)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weight-decay", type=float, default=3e-3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shared-views", action="store_true", help="One model for all views.")
    parser.add_argument("--cache", help="npz file to keep the features in (reused when the settings match).")
    args = parser.parse_args()

    import torch

    from ragar_data.attributes import default_schema
    from ragar_data.synth import SynthConfig, sequence_keys, subject_attributes

    torch.set_num_threads(1)
    schema = default_schema()
    config = SynthConfig(subjects=args.subjects, seed=args.seed, views=tuple(int(v) for v in args.views.split(",")),
                         conditions=tuple(args.conditions.split(",")), seconds=args.seconds,
                         width=args.width, height=args.height)
    keys = sequence_keys(config)
    table = subject_attributes(config)
    started = time.perf_counter()
    jobs = [(config, (k.subject, k.combination, k.condition, k.view)) for k in keys]
    names = np.array([str(k) for k in keys])
    cached = None
    if args.cache and os.path.exists(args.cache):
        cached = np.load(args.cache)
        if cached["settings"].item() != repr(config) or not np.array_equal(cached["keys"], names):
            cached = None
    if cached is not None:
        features = cached["features"]
    else:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            features = np.stack(list(pool.map(sequence_features, jobs, chunksize=8)))
        if args.cache:
            np.savez(args.cache, features=features, keys=names, settings=np.array(repr(config)))
    render_seconds = time.perf_counter() - started
    labels = np.stack([table[(k.subject, k.combination)] for k in keys]).astype(np.int64)
    views = np.array([k.view for k in keys])
    subject_index = np.array([config.subject_ids.index(k.subject) for k in keys])
    fold_of_subject = np.random.default_rng(args.seed).permutation(config.subjects) % args.folds
    fold = fold_of_subject[subject_index]
    predicted = np.zeros_like(labels)
    majority_guess = np.zeros_like(labels)  # the majority class of each fold's training subjects
    groups = [np.ones(len(keys), bool)] if args.shared_views else [views == v for v in config.views]
    for k in range(args.folds):
        is_test = fold == k
        mean, std = features[~is_test].mean(0), features[~is_test].std(0) + 1e-3
        normalised = (features - mean) / std
        for group in groups:
            heads = train_heads(normalised[group & ~is_test], labels[group & ~is_test], schema.num_classes,
                                args.weight_decay)
            predicted[group & is_test] = predict(heads, normalised[group & is_test])
        for i, classes in enumerate(schema.num_classes):
            majority_guess[is_test, i] = np.bincount(labels[~is_test, i], minlength=classes).argmax()
    truth = labels

    print(f"{len(keys)} sequences ({config.subjects} subjects x {len(config.combinations)} combinations x "
          f"{len(config.conditions)} conditions x {len(config.views)} views), features in {render_seconds:.0f} s; "
          f"{args.folds}-fold cross-validation over subjects (every subject tested once, never seen in "
          f"training); {'one model for all views' if args.shared_views else 'one model per view'}")
    print(f"{'attribute':<24}{'K':>3}{'accuracy':>10}{'majority':>10}{'balanced':>10}{'1/K':>7}")
    above = 0
    for i, attribute in enumerate(schema.attributes):
        accuracy = (predicted[:, i] == truth[:, i]).mean()
        chance = (majority_guess[:, i] == truth[:, i]).mean()
        present = np.unique(truth[:, i])
        balanced = np.mean([(predicted[truth[:, i] == c, i] == c).mean() for c in present])
        above += accuracy > chance
        print(f"{attribute.name:<24}{attribute.num_classes:>3}{accuracy:>10.3f}{chance:>10.3f}{balanced:>10.3f}"
              f"{1 / attribute.num_classes:>7.3f}")
    print(f"accuracy above the majority rate for {above} of {len(schema)} attributes; "
          f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
