"""A description of the machine a benchmark ran on, saved with every figure."""

from __future__ import annotations

import datetime
import json
import os
import platform
import socket
import time
from pathlib import Path
from typing import Any

import torch

PROC = Path("/proc")
ACTIVITY_SAMPLE_S = 0.5  # interval over which other processes' CPU use is measured
TOP_PROCESSES = 5
COMMAND_CHARS = 120  # command lines are cut to this length
CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe_machine() -> dict[str, Any]:
    """Host, CPU, core count, torch version and threads, and the CUDA device if one is visible."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def cpu_flags() -> list[str]:
    """The CPU flags of CPU_FLAGS_OF_INTEREST that /proc/cpuinfo lists (empty where it does not exist)."""
    cpuinfo = PROC / "cpuinfo"
    if not cpuinfo.exists():
        return []
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in CPU_FLAGS_OF_INTEREST if flag in present]
    return []


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    """Per process id: user + system clock ticks so far and the command line (or name)."""
    ticks: dict[int, tuple[int, str]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        name_end = stat.rindex(")")
        fields = stat[name_end + 2 :].split()  # fields from the 3rd (state) on
        utime, stime = int(fields[11]), int(fields[12])
        command = " ".join(command.split())
        ticks[int(entry.name)] = (utime + stime, command or stat[stat.index("(") : name_end + 1])
    return ticks


def host_activity(sample_s: float = ACTIVITY_SAMPLE_S, top: int = TOP_PROCESSES) -> dict[str, Any]:
    """What else runs on this host: the load averages (1, 5, 15 min) and the ``top`` processes by CPU use over
    ``sample_s`` seconds (percent of one core; this process is marked ``self``). Linux only; elsewhere
    ``{"available": False}``."""
    loadavg = PROC / "loadavg"
    if not loadavg.exists():
        return {"available": False}
    before = _cpu_ticks()
    time.sleep(sample_s)
    after = _cpu_ticks()
    ticks_per_s = os.sysconf("SC_CLK_TCK")
    busy = []
    for pid, (ticks, command) in after.items():
        used = ticks - before.get(pid, (ticks, ""))[0]
        if used > 0:
            busy.append((used, pid, command))
    busy.sort(reverse=True)
    processes = [
        {
            "pid": pid,
            "cpu_percent": round(100.0 * used / ticks_per_s / sample_s, 1),
            "command": command[:COMMAND_CHARS],
            "self": pid == os.getpid(),
        }
        for used, pid, command in busy[:top]
    ]
    load = [float(value) for value in loadavg.read_text().split()[:3]]
    return {"available": True, "load_average_1_5_15": load, "sample_s": sample_s, "top_processes": processes}


def save_report(report: dict[str, Any], out: Path) -> Path:
    """Write a benchmark's ``report`` as indented JSON to ``out`` (parents created) and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"saved {out}")
    return out
