#!/usr/bin/env python3
"""Writes tests/data/reference_pool.txt, read by tests/test_pool.cpp.

torch.nn.functional.max_pool2d, avg_pool2d and adaptive_avg_pool2d in
float64 over a grid of input shapes, kernels, strides, paddings, dilations,
ceil_mode and count_include_pad, and adaptive output sizes that do and do
not divide the input's. Each case records its settings, the input x, the
output y, a fixed weighting R and the gradient of loss = sum(y * R) with
respect to x, so the C++ test replays every case and needs no PyTorch.

Usage, from anywhere:
    /usr/bin/python3 scripts/make_pool_fixtures.py [output-dir]
(default: tests/data of this repo). Started with an interpreter without
torch, it re-runs itself with /usr/bin/python3 (Debian's python3-torch).

Format: as scripts/make_reference_fixtures.py (whose write_fixture it uses),
one tensor per line: name rank d0 ... d{rank-1} v0 v1 ... (repr floats).
The last max cases have integer inputs, full of ties.
Per case <case> (max<k>, avg<k>, adaptive<k>): <case>_config (int64),
<case>_x, <case>_y, <case>_R, <case>_grad_x.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_torch import fixture_output_dir, import_torch_or_reexec  # noqa: E402

torch = import_torch_or_reexec()

import torch.nn.functional as F  # noqa: E402

from make_reference_fixtures import write_fixture  # noqa: E402  (needs torch importable first)

DT = torch.float64

# shape, kernel, stride, padding, dilation, ceil_mode. Each pair is (h, w).
MAX_CASES = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),  # the tiled fast path
    ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((2, 2, 8, 7), (3, 2), (2, 1), (1, 0), (1, 2), False),
    ((1, 3, 7, 9), (3, 3), (2, 2), (1, 1), (2, 2), False),
    ((2, 2, 5, 5), (2, 2), (2, 2), (0, 0), (1, 1), True),   # ceil_mode clips the last window
    ((1, 2, 6, 8), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 1, 9, 10), (2, 3), (3, 2), (1, 1), (2, 1), True),
    ((2, 1, 5, 6), (1, 3), (1, 1), (0, 1), (1, 1), False),
    ((1, 2, 4, 4), (4, 4), (1, 1), (2, 2), (1, 1), False),  # padding half the kernel
    ((1, 2, 7, 6), (3, 2), (3, 2), (0, 0), (1, 1), True),   # stride == kernel, ceil_mode
]
# Cases whose inputs are rounded to integers in [-2, 2], so that windows
# hold ties: the gradient must go to the first maximum, as PyTorch's.
TIED_MAX_CASES = [
    ((2, 2, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 1, 8, 9), (3, 2), (1, 2), (1, 1), (2, 1), False),
]

# shape, kernel, stride, padding, ceil_mode, count_include_pad.
AVG_CASES = [
    ((2, 3, 6, 6), (2, 2), (2, 2), (0, 0), False, True),
    ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1), False, True),
    ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1), False, False),
    ((2, 2, 5, 5), (2, 2), (2, 2), (0, 0), True, True),
    ((1, 2, 6, 8), (3, 3), (2, 2), (1, 1), True, True),     # the divisor clipped at the padded edge
    ((1, 2, 6, 8), (3, 3), (2, 2), (1, 1), True, False),
    ((1, 1, 9, 10), (2, 3), (3, 2), (1, 1), True, True),
    ((1, 1, 9, 10), (2, 3), (3, 2), (1, 1), True, False),
    ((2, 1, 5, 6), (1, 3), (1, 1), (0, 1), False, False),
    ((1, 2, 4, 5), (4, 2), (1, 2), (2, 1), False, True),
]

# shape, output size.
ADAPTIVE_CASES = [
    ((2, 3, 6, 6), (1, 1)),  # global average pooling
    ((2, 2, 8, 8), (4, 4)),  # divides
    ((1, 2, 7, 9), (3, 4)),  # does not divide: overlapping bins
    ((1, 2, 5, 5), (7, 3)),  # more outputs than input rows
    ((2, 1, 10, 6), (3, 6)),
]


def uniform(gen, shape, low, high):
    return torch.rand(shape, generator=gen, dtype=DT) * (high - low) + low


def record(gen, case, shape, config, pool, tied=False):
    x = uniform(gen, shape, -2, 2)
    if tied:
        x = x.round()
    x.requires_grad_(True)
    y = pool(x)
    R = uniform(gen, tuple(y.shape), -1, 1)
    (y * R).sum().backward()
    return [(f"{case}_config", torch.tensor(config, dtype=torch.int64)), (f"{case}_x", x), (f"{case}_y", y),
            (f"{case}_R", R), (f"{case}_grad_x", x.grad.clone())]


def main():
    out_dir = fixture_output_dir()
    gen = torch.Generator().manual_seed(20260)
    tensors = []
    for k, (shape, kernel, stride, padding, dilation, ceil) in enumerate(MAX_CASES + TIED_MAX_CASES):
        config = [*kernel, *stride, *padding, *dilation, int(ceil)]
        tensors += record(gen, f"max{k}", shape, config,
                          lambda x: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=ceil),
                          tied=k >= len(MAX_CASES))
    for k, (shape, kernel, stride, padding, ceil, include_pad) in enumerate(AVG_CASES):
        config = [*kernel, *stride, *padding, int(ceil), int(include_pad)]
        tensors += record(gen, f"avg{k}", shape, config,
                          lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil,
                                                 count_include_pad=include_pad))
    for k, (shape, size) in enumerate(ADAPTIVE_CASES):
        tensors += record(gen, f"adaptive{k}", shape, list(size), lambda x: F.adaptive_avg_pool2d(x, size))
    description = """
Per case, loss = sum(y * R) with R fixed; <case>_grad_x is its gradient in x (uniform in [-2, 2)).
max<k>_config:      kh kw sh sw ph pw dh dw ceil_mode   (F.max_pool2d; max10.. have integer x: ties)
avg<k>_config:      kh kw sh sw ph pw ceil_mode count_include_pad   (F.avg_pool2d)
adaptive<k>_config: oh ow   (F.adaptive_avg_pool2d)
"""
    write_fixture(out_dir, "pool", description, tensors, script="make_pool_fixtures.py")


if __name__ == "__main__":
    main()
