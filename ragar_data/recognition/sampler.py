"""OpenGait's P x K triplet sampler: each batch holds P identities and K sequences of each.

As upstream's ``TripletSampler`` (``opengait/data/sampler.py``): P identities drawn without replacement; K
sequences of each, without replacement when the identity has K or more, else with replacement. Each batch is
drawn from (seed, batch number) alone, so batch n is the same whether or not a run was interrupted before it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Sampler

from ragar_data.errors import InputError


class TripletBatches(Sampler):
    """``batches`` batches of P x K item indices from the per-item identity ``labels``."""

    def __init__(self, labels: Sequence, identities: int, per_identity: int, batches: int, seed: int = 0,
                 start_batch: int = 0):
        self.by_identity: dict = {}
        for index, label in enumerate(labels):
            self.by_identity.setdefault(label, []).append(index)
        self.identity_order = sorted(self.by_identity)
        if identities > len(self.identity_order):
            raise InputError(f"the sampler needs P = {identities} identities per batch, the training set has "
                             f"{len(self.identity_order)}; lower P (--identities)")
        if identities < 2 or per_identity < 2:
            raise InputError(f"triplets need P >= 2 and K >= 2, got P = {identities}, K = {per_identity}")
        self.identities, self.per_identity = identities, per_identity
        self.batches, self.seed, self.start_batch = batches, seed, start_batch

    def __len__(self) -> int:
        return max(0, self.batches - self.start_batch)

    def batch(self, number: int) -> list[int]:
        rng = np.random.default_rng((self.seed, number))
        chosen = rng.choice(len(self.identity_order), self.identities, replace=False)
        indices = []
        for position in chosen:
            members = self.by_identity[self.identity_order[position]]
            picks = rng.choice(len(members), self.per_identity, replace=len(members) < self.per_identity)
            indices += [members[i] for i in picks]
        return indices

    def __iter__(self):
        for number in range(self.start_batch, self.batches):
            yield self.batch(number)
