"""Smoke test of benchmarks/bench_train.py: the module's own step under a Trainer, in a subprocess, on CPU at 32^3.

Timings are never asserted beyond being positive; the official step is a stand-in script with a fixed result, so
that the side-by-side path (interleaving, ratios) runs without the official code.
"""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

MODULE_NAME = "bench_train"
BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train.py"
FAKE_OFFICIAL_SECONDS = 2.0
FAKE_OFFICIAL_RSS_GIB = 4.0
FAKE_OFFICIAL_STEP = f"""
import json
print("RESULT " + json.dumps({{"seconds_median": {FAKE_OFFICIAL_SECONDS}, "seconds_all": [{FAKE_OFFICIAL_SECONDS}],
                              "peak_rss_gib": {FAKE_OFFICIAL_RSS_GIB}}}))
"""


def load_benchmark() -> ModuleType:
    """The benchmark script as a module (registered, as its dataclass needs)."""
    if MODULE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, BENCHMARK)
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[MODULE_NAME]


@pytest.fixture
def fake_official(tmp_path: Path) -> tuple[Path, Path]:
    """(official dir with a stand-in official_step.py, a python that imports an empty easydict)."""
    official = tmp_path / "official"
    official.mkdir()
    (official / "official_step.py").write_text(FAKE_OFFICIAL_STEP)
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / "easydict.py").write_text("")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={packages} exec {sys.executable} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return official, python


@pytest.mark.slow
def test_benchmark_times_the_module_step(tmp_path: Path, tiny_train_overrides, fake_official) -> None:
    bench = load_benchmark()
    official_dir, official_python = fake_official
    out = tmp_path / "train.json"
    argv = ["--device", "cpu", "--cubes", "32", "--generators", "biplanar", "--warmup", "1", "--steps", "1"]
    argv += ["--official-dir", str(official_dir), "--official-python", str(official_python), "--out", str(out)]
    argv += [f"--override={o}" for o in tiny_train_overrides]
    bench.main(argv)

    report = json.loads(out.read_text())
    assert {"machine", "host_activity_before", "host_activity_after", "settings", "cases"} <= report.keys()
    assert report["host_activity_before"]["available"] is True
    (case,) = report["cases"]
    assert (case["generator"], case["cube"], case["batch"], case["precision"]) == ("biplanar", 32, 1, "32-true")
    ours = case["ours"]
    assert ours["ok"], ours
    assert ours["seconds_per_step_median"] > 0 and ours["samples_per_s"] > 0 and ours["peak_rss_gib"] > 0
    assert set(ours["phases_median_s"]) == set(bench.PHASES)
    assert all(seconds > 0 for seconds in ours["phases_median_s"].values())
    phases = ours["phases_median_s"]
    assert phases["g_forward"] + phases["g_backward_via_d"] + phases["d_step"] <= ours["seconds_per_step_median"]
    (run,) = case["runs"]
    assert run["model_config"] == "model/generator=biplanar"
    assert len(run["seconds_per_step_all"]) == 1
    assert case["official"]["seconds_per_step_median"] == FAKE_OFFICIAL_SECONDS
    ratio = case["ours_over_official"]
    assert ratio["seconds_per_step"] == pytest.approx(ours["seconds_per_step_median"] / FAKE_OFFICIAL_SECONDS)
    assert ratio["peak_rss"] == pytest.approx(ours["peak_rss_gib"] / FAKE_OFFICIAL_RSS_GIB)


def test_every_generator_config_is_benchmarked() -> None:
    bench = load_benchmark()
    configs = sorted(p.stem for p in (Path(bench.CONFIG_DIR) / "model" / "generator").glob("*.yaml"))
    args = bench.parse_args(["--device", "cpu", "--cubes", "32", "--batch", "1", "4", "--compile", "both"])
    cases = bench.build_cases(args)
    assert sorted({case.generator for case in cases}) == configs
    assert len(cases) == len(configs) * 2 * 2  # batch sizes x eager/compiled
    comparable = [case for case in cases if case.official_precision()]
    assert {(c.generator, c.batch, c.compile) for c in comparable} == {("biplanar", 1, False)}
