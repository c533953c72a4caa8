"""The machine description and the host-activity snapshot saved with benchmark figures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from x2ct.utils.machine import describe_machine, host_activity

BUSY_S = 0.6  # longer than the sample interval below
SAMPLE_S = 0.3


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="needs Linux /proc")
def test_host_activity_lists_a_busy_process() -> None:
    def spin() -> None:
        end = time.perf_counter() + BUSY_S
        while time.perf_counter() < end:
            pass

    worker = threading.Thread(target=spin)
    worker.start()
    activity = host_activity(sample_s=SAMPLE_S, top=50)
    worker.join()
    assert len(activity["load_average_1_5_15"]) == 3
    ours = [p for p in activity["top_processes"] if p["self"]]
    assert len(ours) == 1 and ours[0]["cpu_percent"] > 0
    assert all(p["cpu_percent"] > 0 and p["command"] for p in activity["top_processes"])


def test_machine_description_names_the_cpu_flags() -> None:
    info = describe_machine()
    assert isinstance(info["cpu_flags"], list)
    assert {"cpu", "cpu_cores", "torch", "cuda_device"} <= info.keys()
