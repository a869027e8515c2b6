#!/usr/bin/env python3
"""Runs the benchmark workloads in tapegrad and in PyTorch on this machine and
prints one table line per workload:

    <workload> tapegrad=<seconds> pytorch=<seconds> speedup=<median> speedup_min=<..> speedup_max=<..>

The engines run interleaved: per workload, --rounds rounds of tapegrad
then PyTorch (at 1 and at 2 intra-op threads, its best taken), so that the
machine's drift and other load fall on both sides of each round's ratio.
tapegrad= and pytorch= are the medians over the rounds; speedup is the
median of the rounds' ratios, with their min and max.
Usage: bench/compare_pytorch.py [--bench PATH] [--workloads tape,matmul,...] [--rounds N]
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


def measure_pair(a, b, warmup=3, min_repeats=10, min_seconds=1.0):
    """a and b alternately, call by call: their medians and the median of the per-pair ratios b / a."""
    for _ in range(warmup):
        a()
        b()
    ta, tb, ratios = [], [], []
    start = time.perf_counter()
    while len(ta) < min_repeats or time.perf_counter() - start < min_seconds:
        for fn, samples in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        ratios.append(tb[-1] / ta[-1])
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


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


def torch_mlp_model():
    import torch
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def torch_mlp_step_seconds(batch):
    import torch
    step = torch_mlp_model()
    x = torch.randn(batch, 784)
    y = torch.arange(batch) * 7 % 10
    return measure(lambda: step(x, y), 5, 20, 1.0)


def torch_mlp():
    return {f"mlp_step_batch{batch}": torch_mlp_step_seconds(batch) for batch in (64, 512)}


def torch_capture():
    """PyTorch's eager steps beside tapegrad's captured ones (bench_capture.cpp), and the same steps with the
    model's forward through torch.jit.trace (keys <name>@jit): the closest PyTorch 1.13 offers on CPU."""
    import torch
    times = {}
    x = torch.randn(1, 8, requires_grad=True)

    def chain():
        y = x
        for _ in range(1000):
            y = torch.tanh(y)
        y.backward(torch.ones(1, 8))
        x.grad = None

    times["capture_tape_tanh_per_node"] = measure(chain) / 1000

    def step_seconds(model, batch_x, batch_y, lr, repeats):
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)

        def step(forward):
            loss = torch.nn.functional.cross_entropy(forward(batch_x), batch_y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        traced = torch.jit.trace(model, batch_x)
        return measure(lambda: step(model), 5, repeats, 1.0), measure(lambda: step(traced), 5, repeats, 1.0)

    small = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                                torch.nn.Linear(16, 2))
    eager, traced = step_seconds(small, torch.randn(32, 2), torch.arange(32) % 2, 1e-2, 100)
    times["capture_small_mlp_step"], times["capture_small_mlp_step@jit"] = eager, traced
    for batch in (64, 512):
        mlp = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                  torch.nn.ReLU(), torch.nn.Linear(128, 10))
        name = f"capture_mlp_step_batch{batch}"
        times[name], times[name + "@jit"] = step_seconds(mlp, torch.randn(batch, 784), torch.arange(batch) * 7 % 10,
                                                         1e-3, 20)
    return times


def torch_conv_paths(build):
    """Times build()'s step in PyTorch's two CPU convolution paths: its
    default (oneDNN in Debian's build) and its own im2col + BLAS one."""
    import torch
    results = {}
    for suffix, use_onednn in (("", True), ("@im2col", False)):
        torch.backends.mkldnn.enabled = use_onednn
        name, step = build()
        results[name + suffix] = measure(step, 3, 10, 2.0)
    torch.backends.mkldnn.enabled = True
    return results


def torch_conv():
    import torch

    def build():
        x = torch.randn(64, 32, 14, 14, requires_grad=True)
        conv = torch.nn.Conv2d(32, 64, 3, padding=1)
        dy = torch.randn(64, 64, 14, 14)

        def step():
            conv.zero_grad()
            x.grad = None
            conv(x).backward(dy)
        return "conv_layer_fwd_bwd", step
    return torch_conv_paths(build)


def torch_cnn():
    import torch

    def build():
        torch.manual_seed(5)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
            torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        x = torch.rand(64, 1, 28, 28)
        y = torch.arange(64) * 7 % 10

        def step():
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return "cnn_step_batch64", step
    return torch_conv_paths(build)


def torch_lstm():
    """nn.LSTM(32 -> 128), T = 100, batch 32: forward, backward of the mean
    square of the outputs, Adam step (bench_recurrent.cpp's lstm_layer_step)."""
    import torch
    torch.manual_seed(7)
    lstm = torch.nn.LSTM(32, 128)
    optimizer = torch.optim.Adam(lstm.parameters(), lr=1e-3)
    x = torch.randn(100, 32, 32)

    def step():
        y, _ = lstm(x)
        loss = (y * y).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {"lstm_layer_step": measure(step, 2, 10, 2.0)}


def torch_lstm_cell():
    """LSTMCell(64 -> 64) unrolled by hand over 1,000 steps at batch 1,
    forward and backward: seconds per time step."""
    import torch
    torch.manual_seed(8)
    cell = torch.nn.LSTMCell(64, 64)
    x = torch.randn(1, 64)

    def run():
        h, c = torch.zeros(1, 64), torch.zeros(1, 64)
        for _ in range(1000):
            h, c = cell(x, (h, c))
        h.sum().backward()
        cell.zero_grad()
    return {"lstm_cell_step": measure(run, 2, 10, 2.0) / 1000}


TORCH_RATIOS = {}  # hvp_over_grad per PyTorch thread count


def torch_hvp():
    import torch
    torch.manual_seed(3)
    params = [(torch.randn(256, 784) * 0.05).requires_grad_(), torch.zeros(256, requires_grad=True),
              (torch.randn(10, 256) * 0.1).requires_grad_(), torch.zeros(10, requires_grad=True)]
    v = [torch.randn(p.shape) for p in params]
    x = torch.randn(64, 784)
    labels = torch.arange(64) * 7 % 10
    F = torch.nn.functional

    def loss():
        return F.cross_entropy(F.linear(torch.tanh(F.linear(x, params[0], params[1])), params[2], params[3]), labels)

    def gradient():
        torch.autograd.grad(loss(), params)

    def hvp():
        g = torch.autograd.grad(loss(), params, create_graph=True)
        torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)

    grad_seconds, hvp_seconds, ratio = measure_pair(gradient, hvp, 5, 40, 2.0)
    TORCH_RATIOS[torch.get_num_threads()] = ratio
    return {"grad_mlp_784_256_10_batch64": grad_seconds, "hvp_mlp_784_256_10_batch64": hvp_seconds}


def read_idx(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def torch_mnist():
    import torch
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist")
    images = torch.tensor(read_idx(os.path.join(root, "train-images-idx3-ubyte")).reshape(-1, 784),
                          dtype=torch.float32) / 255
    labels = torch.tensor(read_idx(os.path.join(root, "train-labels-idx1-ubyte")).astype("int64"))
    step = torch_mlp_model()
    generator = torch.Generator().manual_seed(1)

    def epoch():
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), 64):
            index = order[start:start + 64]
            step(images[index], labels[index])

    return {"mnist_epoch_batch64": measure(epoch, 1, 3, 2.0)}


def rss_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def memory_child():
    """Runs in a fresh process: 1,000 MLP steps at batch 64, then prints RSS facts."""
    import torch
    torch.set_num_threads(1)
    step = torch_mlp_model()
    x = torch.randn(64, 784)
    y = torch.arange(64) * 7 % 10
    at_100 = 0
    for i in range(1, 1001):
        step(x, y)
        if i == 100:
            at_100 = rss_kb("VmRSS")
    print(f"peak_rss_mb={rss_kb('VmHWM') / 1024:.1f} rss_growth_100_to_1000_kb={rss_kb('VmRSS') - at_100}")


TORCH_WORKLOADS = {"tape": torch_tape, "matmul": torch_matmul, "mlp": torch_mlp, "mnist": torch_mnist,
                   "hvp": torch_hvp, "conv": torch_conv, "cnn": torch_cnn,
                   "lstm": torch_lstm, "lstm_cell": torch_lstm_cell,
                   "lstm_unroll": lambda: {},  # tapegrad only: time and memory against T
                   "capture": torch_capture,
                   "contention": None}  # the MLP step under load (run_contention)


SEEN_COMMENTS = set()
SEEN_COMMENTS_RAW = set()


def run_tapegrad(bench, workloads, env=None):
    out = subprocess.run([bench] + workloads, check=True, capture_output=True, text=True,
                         env=dict(os.environ, **(env or {}))).stdout
    results = {}
    for line in out.splitlines():
        if line.startswith("#"):
            SEEN_COMMENTS_RAW.add(line)
            if line not in SEEN_COMMENTS:
                SEEN_COMMENTS.add(line)
                print(f"# tapegrad {line[1:].strip()}")
            continue
        name, *fields = line.split()
        values = dict(field.split("=", 1) for field in fields)
        results[name] = values
    return results


BUSY_SECONDS = 120  # a competing process stops by itself after this, whatever happens to us


def best_torch_mlp64():
    import torch
    best = float("inf")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        best = min(best, torch_mlp_step_seconds(64))
    return best


def run_contention(bench, rounds):
    """The MLP step at batch 64, quiet and with one busy process per core
    (started and stopped here, each bounded to BUSY_SECONDS), both engines
    interleaved per round; prints each engine's slowdown (loaded / quiet,
    medians) and their ratio (tapegrad's over PyTorch's: <= 1 is the goal)."""
    busy_code = f"import time\nend = time.time() + {BUSY_SECONDS}\nwhile time.time() < end: pass\n"
    quiet = {"tapegrad": [], "pytorch": []}
    loaded = {"tapegrad": [], "pytorch": []}

    def measure_both(into):
        into["tapegrad"].append(float(run_tapegrad(bench, ["mlp"])["mlp_step_batch64"]["seconds"]))
        into["pytorch"].append(best_torch_mlp64())

    for _ in range(rounds):
        measure_both(quiet)
        busy = [subprocess.Popen([sys.executable, "-c", busy_code]) for _ in range(os.cpu_count() or 1)]
        try:
            measure_both(loaded)
        finally:
            for process in busy:
                process.kill()
                process.wait()
    slowdown = {engine: statistics.median(loaded[engine]) / statistics.median(quiet[engine]) for engine in quiet}
    print(f"contention_mlp_step_batch64 busy_processes={os.cpu_count()} "
          f"tapegrad_quiet={statistics.median(quiet['tapegrad']):.6g} "
          f"tapegrad_loaded={statistics.median(loaded['tapegrad']):.6g} "
          f"pytorch_quiet={statistics.median(quiet['pytorch']):.6g} "
          f"pytorch_loaded={statistics.median(loaded['pytorch']):.6g} "
          f"tapegrad_slowdown={slowdown['tapegrad']:.2f} pytorch_slowdown={slowdown['pytorch']:.2f} "
          f"slowdown_ratio={slowdown['tapegrad'] / slowdown['pytorch']:.2f}")


def spread(values):
    return statistics.median(values), min(values), max(values)


def print_workload(rounds):
    """One line per tapegrad result: its median over the rounds and, where PyTorch has the workload, PyTorch's
    median and the median, min and max of the per-round speedups. Extra fields are the first round's."""
    for name, values in rounds[0][0].items():
        ours = [float(r[0][name]["seconds"]) for r in rounds]
        base = name.split("@")[0]  # <workload>@onednn compares with PyTorch's default path too

        def against(key):
            theirs = [r[1][key] for r in rounds]
            median, low, high = spread([t / o for t, o in zip(theirs, ours)])
            return (f"pytorch={statistics.median(theirs):.6g} speedup={median:.2f} "
                    f"speedup_min={low:.2f} speedup_max={high:.2f}")

        line = f"{name} tapegrad={statistics.median(ours):.6g}"
        if base in rounds[0][1]:
            line += " " + against(base)
        extras = " ".join(f"{k}={v}" for k, v in values.items() if k != "seconds")
        print(line + (" " + extras if extras else ""))
        # PyTorch's second convolution path, and its traced (jit) steps.
        for path in ("im2col", "jit"):
            if f"{base}@{path}" in rounds[0][1]:
                print(f"{name}_vs_pytorch_{path} tapegrad={statistics.median(ours):.6g} {against(base + '@' + path)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "build-bench", "bench",
                                                        "tapegrad_bench"))
    parser.add_argument("--workloads", default=",".join(TORCH_WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per workload (default 3)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ensure_torch()
    import torch

    if args.memory_child:
        memory_child()
        return

    workloads = args.workloads.split(",")
    import platform
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# machine: {cpu}, {os.cpu_count()} cores; PyTorch {torch.__version__}, best of 1 and 2 threads")
    if args.rounds < 1:
        sys.exit(f"compare_pytorch: --rounds must be at least 1, got {args.rounds}")
    unknown = [w for w in workloads if w not in TORCH_WORKLOADS]
    if unknown:
        sys.exit(f"compare_pytorch: unknown workload(s) {','.join(unknown)}; known: {','.join(TORCH_WORKLOADS)}")
    print(f"# method: {args.rounds} interleaved rounds per workload (tapegrad, then PyTorch); "
          "medians over rounds, speedup = median of per-round ratios")
    for workload in workloads:
        if workload == "contention":
            run_contention(args.bench, args.rounds)
            continue
        rounds = []  # per round: (our lines, PyTorch's best seconds per name)
        for _ in range(args.rounds):
            ours = run_tapegrad(args.bench, [workload])
            # The convolutions again through the oneDNN backend, when built in
            # (the bench says so): lines <workload>@onednn.
            if workload in ("conv", "cnn") and "# conv_backends=im2col,onednn" in SEEN_COMMENTS_RAW:
                for name, values in run_tapegrad(args.bench, [workload], {"TAPEGRAD_CONV_BACKEND": "onednn"}).items():
                    ours[name + "@onednn"] = values
            theirs = {}
            for threads in (1, 2):
                torch.set_num_threads(threads)
                for name, seconds in TORCH_WORKLOADS[workload]().items():
                    theirs[name] = min(seconds, theirs.get(name, float("inf")))
            rounds.append((ours, theirs))
        print_workload(rounds)
    if TORCH_RATIOS:
        ratios = " ".join(f"threads{n}={r:.2f}" for n, r in sorted(TORCH_RATIOS.items()))
        print(f"hvp_over_grad pytorch {ratios} (median of interleaved pairs)")

    # Memory: each engine in a fresh process, so that peak RSS is its own.
    ours = run_tapegrad(args.bench, ["memory"])
    for name, values in ours.items():
        print(f"memory tapegrad peak_rss_mb={float(values['peak_rss_mb']):.1f} "
              f"rss_growth_100_to_1000_kb={values['rss_growth_100_to_1000_kb']}")
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child"], check=True,
                           capture_output=True, text=True).stdout.strip()
    print(f"memory pytorch {child}")


if __name__ == "__main__":
    main()
