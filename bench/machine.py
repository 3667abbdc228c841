"""What the benchmarks print about the machine they ran on."""

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model and its AVX and AMX flags, from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
        [],
    )
    return f"{model} ({' '.join(sorted(f for f in set(flags) if f.startswith(('avx', 'amx'))))})"
