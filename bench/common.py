"""Shared bits of the benchmarks: machine description, memory of a process tree, RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


# the flags that decide which int8/fp32 kernels onnxruntime's MLAS picks (AVX2 vs AVX-512, VNNI, AMX)
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8")


def cpu() -> tuple[str, list[str]]:
    """CPU model name (with vendor, family and model numbers) and its kernel-relevant flags."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if ":" in line:
                k, v = (x.strip() for x in line.split(":", 1))
                info.setdefault(k, v)
            elif info:
                break
    except OSError:
        pass
    name = info.get("model name", "unknown CPU")
    ident = f"{info.get('vendor_id', '?')} family {info.get('cpu family', '?')} model {info.get('model', '?')}"
    flags = set(info.get("flags", "").split())
    return f"{name}, {ident}", [f for f in KERNEL_FLAGS if f in flags]


def machine() -> str:
    name, flags = cpu()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        load = "load average %.1f" % os.getloadavg()[0]
    except OSError:
        load = "load unknown"
    return (f"{os.cpu_count()} CPU cores ({name}; int8/fp32 kernel flags: {' '.join(flags) or 'none'}), "
            f"{mem:.0f} GiB RAM, {load} at start, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (from /proc)."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        for child in out.split():
            pids.append(int(child))
            out2 = subprocess.run(["ps", "-o", "pid=", "--ppid", child], capture_output=True, text=True).stdout
            pids += [int(c) for c in out2.split()]
    except (OSError, ValueError):
        pass
    for p in pids:
        try:
            m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def write_section(name: str, body: str) -> None:
    """Replace (or add) the section ``## name`` of bench/RESULTS.md, keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    header = f"## {name}\n"
    block = f"{header}\n_Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}._\n\n{body.strip()}\n\n"
    if header in text:
        start = text.index(header)
        nxt = text.find("\n## ", start + len(header))
        text = text[:start] + block + (text[nxt + 1 :] if nxt != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + block
    RESULTS.write_text(text)
