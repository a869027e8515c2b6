"""Finds PyTorch for the fixture scripts (scripts/make_*_fixture*.py).

Debian's python3-torch installs into the system's /usr/bin/python3, which is
not always the first python3 on PATH. import_torch_or_reexec() returns the
torch module, or re-runs the calling script under an interpreter that has
it, or exits with a message saying what to install.
"""

import os
import subprocess
import sys

# Interpreters tried, in order, when the running one cannot import torch.
TORCH_INTERPRETERS = ["/usr/bin/python3", "/usr/local/bin/python3"]


def import_torch_or_reexec():
    try:
        import torch
        return torch
    except ImportError:
        pass
    if os.environ.get("TAPEGRAD_FIXTURES_REEXEC"):
        sys.exit(f"{sys.executable} cannot import torch either; install python3-torch (Debian) "
                 "and run this script with /usr/bin/python3")
    script = os.path.abspath(sys.argv[0])
    for candidate in TORCH_INTERPRETERS:
        if not os.path.exists(candidate) or os.path.realpath(candidate) == os.path.realpath(sys.executable):
            continue
        probe = subprocess.run([candidate, "-c", "import torch"], capture_output=True)
        if probe.returncode == 0:
            print(f"{sys.executable} has no torch; re-running with {candidate}", file=sys.stderr)
            env = dict(os.environ, TAPEGRAD_FIXTURES_REEXEC="1")
            os.execve(candidate, [candidate, script] + sys.argv[1:], env)
    sys.exit(f"{sys.executable} cannot import torch and none of {TORCH_INTERPRETERS} can; "
             "install python3-torch (Debian) and run: /usr/bin/python3 " + " ".join(sys.argv))


def fixture_output_dir():
    """Where a fixture script writes: its first argument, or this repo's
    tests/data; created if missing."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "tests", "data")
    os.makedirs(out_dir, exist_ok=True)
    return out_dir
