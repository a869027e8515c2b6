#!/usr/bin/env python3
"""Runs the benchmark workloads in tapegrad and in PyTorch on this machine and
prints one table line per workload:

    <workload> tapegrad=<seconds> pytorch=<seconds> speedup=<pytorch/tapegrad>

PyTorch runs at 1 and at 2 intra-op threads; its best time is compared.
Usage: bench/compare_pytorch.py [--bench PATH] [--workloads tape,matmul,...]
Needs Debian's python3-torch (it re-executes itself under /usr/bin/python3
when the first python3 on PATH has no torch).
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time


def ensure_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        system_python = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(system_python) and os.path.exists(system_python):
            os.execv(system_python, [system_python] + sys.argv)
        sys.exit("compare_pytorch: PyTorch not found; install Debian's python3-torch (apt-get install python3-torch)")


def measure(fn, warmup=3, min_repeats=10, min_seconds=1.0):
    for _ in range(warmup):
        fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


# --- PyTorch versions of the workloads (same shapes, float32) ---

def torch_tape():
    import torch
    x = torch.randn(1, 8, requires_grad=True)

    def run():
        y = x
        for _ in range(1000):
            y = torch.tanh(y)
        y.sum().backward()
        x.grad = None

    return {"tape_tanh_per_node": measure(run) / 1000}


def torch_matmul():
    import torch
    n = 1024
    a = torch.randn(n, n, requires_grad=True)
    b = torch.randn(n, n, requires_grad=True)
    g = torch.ones(n, n)

    def run():
        c = a @ b
        c.backward(g)
        a.grad = None
        b.grad = None

    return {"matmul_1024_fwd_bwd": measure(run, 2, 5, 2.0)}


TORCH_WORKLOADS = {"tape": torch_tape, "matmul": torch_matmul}


def run_tapegrad(bench, workloads):
    out = subprocess.run([bench] + workloads, check=True, capture_output=True, text=True).stdout
    results = {}
    for line in out.splitlines():
        name, *fields = line.split()
        values = dict(field.split("=", 1) for field in fields)
        results[name] = values
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "build-bench", "bench",
                                                        "tapegrad_bench"))
    parser.add_argument("--workloads", default=",".join(TORCH_WORKLOADS))
    args = parser.parse_args()
    ensure_torch()
    import torch

    workloads = args.workloads.split(",")
    ours = run_tapegrad(args.bench, workloads)
    theirs = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for workload in workloads:
            for name, seconds in TORCH_WORKLOADS[workload]().items():
                theirs[name] = min(seconds, theirs.get(name, float("inf")))
    for name, values in ours.items():
        line = f"{name} tapegrad={float(values['seconds']):.6g}"
        if name in theirs:
            line += f" pytorch={theirs[name]:.6g} speedup={theirs[name] / float(values['seconds']):.2f}"
        extras = " ".join(f"{k}={v}" for k, v in values.items() if k != "seconds")
        print(line + (" " + extras if extras else ""))


if __name__ == "__main__":
    main()
