#!/usr/bin/env python3
"""Writes tests/data/reference_where.txt, read by tests/test_elementwise.cpp.

torch.where(cond, a, b) and Tensor.masked_fill(mask, value) in float64 over
broadcasting shapes, with NaN and Inf in the branch not taken. Each case
records the 0/1 mask (as float64), the inputs, the output y, a fixed
weighting R and the gradients of loss = sum(y * R) in the inputs (where:
a and b; masked_fill: x); a NaN in an unselected branch must leave the
gradients finite.

Usage, from anywhere:
    /usr/bin/python3 scripts/make_where_fixtures.py [output-dir]
(default: tests/data of this repo). Started with an interpreter without
torch, it re-runs itself with /usr/bin/python3 (Debian's python3-torch).

Format: as scripts/make_reference_fixtures.py (whose write_fixture it uses).
Per where case w<k>: w<k>_cond, w<k>_a, w<k>_a_poison, w<k>_b, w<k>_b_poison,
w<k>_y, w<k>_R, w<k>_grad_a, w<k>_grad_b; a *_poison code of 1 (2) makes that
element NaN (Inf) in the input (the format holds finite values only). Per masked_fill case m<k>: m<k>_mask, m<k>_x, m<k>_value
(0-d), m<k>_y, m<k>_R, m<k>_grad_x.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_torch import fixture_output_dir, import_torch_or_reexec  # noqa: E402

torch = import_torch_or_reexec()

from make_reference_fixtures import write_fixture  # noqa: E402  (needs torch importable first)

DT = torch.float64

# cond, a, b shapes: equal, each one broadcast, all three different, 0-d.
WHERE_CASES = [
    ((3, 4), (3, 4), (3, 4)),
    ((3, 1), (3, 4), (4,)),
    ((4,), (2, 1, 4), (2, 3, 1)),
    ((), (2, 3), (2, 3)),
    ((2, 3), (), (1,)),
]
# mask shape, x shape, value.
FILL_CASES = [
    ((3, 4), (3, 4), -1.5),
    ((4,), (3, 4), 0.0),
    ((2, 1, 3), (2, 4, 3), 4.0),
]


def uniform(gen, shape, low, high):
    return torch.rand(shape, generator=gen, dtype=DT) * (high - low) + low


def mask_of(gen, shape):
    return (torch.rand(shape, generator=gen, dtype=DT) < 0.5)


def poison_codes(shape, taken):
    """Where to put a NaN (code 1) and an Inf (code 2): the first two
    elements the select never takes. The fixture format holds finite values
    only, so the test puts them in itself."""
    codes = torch.zeros(shape, dtype=torch.int64)
    flat = codes.view(-1)
    spots = [i for i in range(flat.numel()) if not taken.reshape(-1)[i]]
    for k, i in enumerate(spots[:2]):
        flat[i] = 1 + k
    return codes


def poisoned(t, codes):
    t = t.clone()
    t[codes == 1] = math.nan
    t[codes == 2] = math.inf
    return t


def where_case(gen, name, cond_shape, a_shape, b_shape):
    cond = mask_of(gen, cond_shape)
    out_shape = torch.broadcast_shapes(cond_shape, a_shape, b_shape)
    full = cond.expand(out_shape)
    a = uniform(gen, a_shape, -2, 2)
    b = uniform(gen, b_shape, -2, 2)
    # An element of a is taken somewhere unless cond is false at every place it broadcasts to.
    a_taken = full.reshape(out_shape).sum_to_size(a_shape) > 0 if a_shape else full.any().reshape(())
    b_taken = (~full).reshape(out_shape).sum_to_size(b_shape) > 0 if b_shape else (~full).any().reshape(())
    a_codes, b_codes = poison_codes(a_shape, a_taken), poison_codes(b_shape, b_taken)
    a_in = poisoned(a, a_codes).requires_grad_(True)
    b_in = poisoned(b, b_codes).requires_grad_(True)
    y = torch.where(cond, a_in, b_in)
    R = uniform(gen, tuple(y.shape), -1, 1)
    (y * R).sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(a_in.grad).all() and torch.isfinite(b_in.grad).all()
    return [(f"{name}_cond", cond.to(DT)), (f"{name}_a", a), (f"{name}_a_poison", a_codes), (f"{name}_b", b),
            (f"{name}_b_poison", b_codes), (f"{name}_y", y), (f"{name}_R", R), (f"{name}_grad_a", a_in.grad.clone()),
            (f"{name}_grad_b", b_in.grad.clone())]


def fill_case(gen, name, mask_shape, x_shape, value):
    mask = mask_of(gen, mask_shape)
    x = uniform(gen, x_shape, -2, 2).requires_grad_(True)
    y = x.masked_fill(mask, value)
    R = uniform(gen, tuple(y.shape), -1, 1)
    (y * R).sum().backward()
    return [(f"{name}_mask", mask.to(DT)), (f"{name}_x", x), (f"{name}_value", torch.tensor(value, dtype=DT)),
            (f"{name}_y", y), (f"{name}_R", R), (f"{name}_grad_x", x.grad.clone())]


def main():
    out_dir = fixture_output_dir()
    gen = torch.Generator().manual_seed(20262)
    tensors = []
    for k, shapes in enumerate(WHERE_CASES):
        tensors += where_case(gen, f"w{k}", *shapes)
    for k, case in enumerate(FILL_CASES):
        tensors += fill_case(gen, f"m{k}", *case)
    description = """
where: y = torch.where(cond, a, b), cond a 0/1 mask (recorded as float64); NaN (poison code 1) and Inf
(code 2) sit in elements of a and b that the select never takes. loss = sum(y * R) with R fixed; <case>_grad_a, <case>_grad_b.
masked_fill: y = x.masked_fill(mask, value); <case>_grad_x.
"""
    write_fixture(out_dir, "where", description, tensors, script="make_where_fixtures.py")


if __name__ == "__main__":
    main()
