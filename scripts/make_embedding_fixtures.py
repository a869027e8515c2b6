#!/usr/bin/env python3
"""Writes tests/data/reference_embedding.txt, read by tests/test_embedding.cpp.

torch.nn.functional.embedding in float64 over index tensors of several
shapes (0-d, 1-d, 2-d, 3-d, empty), with repeated indices and with
padding_idx (positive and negative). Each case records its padding_idx
(config: [has_padding, padding_idx as given]), the indices, the table W,
the output y, a fixed weighting R and the gradient of loss = sum(y * R)
with respect to W, so the C++ test replays every case and needs no PyTorch.

Usage, from anywhere:
    /usr/bin/python3 scripts/make_embedding_fixtures.py [output-dir]
(default: tests/data of this repo). Started with an interpreter without
torch, it re-runs itself with /usr/bin/python3 (Debian's python3-torch).

Format: as scripts/make_reference_fixtures.py (whose write_fixture it uses),
one tensor per line: name rank d0 ... d{rank-1} v0 v1 ... (repr floats).
Per case emb<k>: emb<k>_config (int64), emb<k>_indices (int64), emb<k>_W,
emb<k>_y, emb<k>_R, emb<k>_grad_W.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_torch import fixture_output_dir, import_torch_or_reexec  # noqa: E402

torch = import_torch_or_reexec()

import torch.nn.functional as F  # noqa: E402

from make_reference_fixtures import write_fixture  # noqa: E402  (needs torch importable first)

DT = torch.float64

# table rows, dim, indices shape, padding_idx (None: no padding row).
CASES = [
    (10, 4, (), None),          # 0-d indices: one row
    (10, 4, (7,), None),
    (6, 3, (3, 5), None),       # 15 draws from 6 rows: repeats accumulate
    (6, 3, (3, 5), 2),
    (8, 5, (2, 3, 4), -1),      # negative padding_idx: the last row
    (5, 2, (4, 6), 0),
    (7, 3, (0, 4), 1),          # empty indices: y empty, grad_W zero
    (1, 3, (5,), None),         # a one-row table: every index 0
]


def uniform(gen, shape, low, high):
    return torch.rand(shape, generator=gen, dtype=DT) * (high - low) + low


def record(gen, case, rows, dim, shape, padding_idx):
    indices = torch.randint(0, rows, shape, generator=gen, dtype=torch.int64)
    if padding_idx is not None and indices.numel() > 0:
        # Make sure the padding row is picked at least once (and twice where there is room).
        flat = indices.view(-1)
        flat[0] = padding_idx % rows
        if flat.numel() > 3:
            flat[3] = padding_idx % rows
    W = uniform(gen, (rows, dim), -2, 2).requires_grad_(True)
    y = F.embedding(indices, W, padding_idx=padding_idx)
    R = uniform(gen, tuple(y.shape), -1, 1)
    (y * R).sum().backward()
    config = [0, 0] if padding_idx is None else [1, padding_idx]
    return [(f"{case}_config", torch.tensor(config, dtype=torch.int64)), (f"{case}_indices", indices),
            (f"{case}_W", W), (f"{case}_y", y), (f"{case}_R", R), (f"{case}_grad_W", W.grad.clone())]


def main():
    out_dir = fixture_output_dir()
    gen = torch.Generator().manual_seed(20261)
    tensors = []
    for k, (rows, dim, shape, padding_idx) in enumerate(CASES):
        tensors += record(gen, f"emb{k}", rows, dim, shape, padding_idx)
    description = """
Per case, y = F.embedding(indices, W, padding_idx) with W uniform in [-2, 2); loss = sum(y * R) with R fixed;
<case>_grad_W is its gradient in W (the padding row's is zero, repeated indices add up).
emb<k>_config: has_padding padding_idx (as given: may be negative)
"""
    write_fixture(out_dir, "embedding", description, tensors, script="make_embedding_fixtures.py")


if __name__ == "__main__":
    main()
