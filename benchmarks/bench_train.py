"""Benchmark: the X2CT-GAN training step as the product runs it (``X2CTGANModule.training_step`` under a Trainer).

    python benchmarks/bench_train.py [--device cpu|cuda] [--cubes 64 128] [--batch 1 4]
        [--precision 32-true bf16-mixed] [--compile [on|both]] [--checkpointing] [--generators biplanar ...]
        [--warmup 1] [--steps 4] [--rounds 1] [--official-python PY] [--out results.json]

For every generator config in ``conf/model/generator/*.yaml`` (or ``--generators``), cube, batch size, precision and
compile choice, the train config is composed with ``model/generator=<name> data.cube=<cube>
data.batch_size=<batch> trainer=cpu|gpu trainer.precision=<precision>``, the model and the Trainer are instantiated
from it, and the Trainer fits the module for warm-up + timed steps on an in-memory loader of random batches (``ct``,
``xray1``, ``xray2``, ``proj_xray1``, ``proj_xray2``, ``case_id``). Each case runs in a fresh subprocess, so that its
peak memory is its own. Per case: the median seconds per step over the timed steps, samples/s, the peak RSS of the
process (CPU) or the peak allocated CUDA memory, and the phases of the step (CUDA synchronized at each mark):

    g_forward         the generator forward;
    g_backward_via_d  generator output -> end of the generator's optimizer step: the discriminator on the fake, the
                      generator losses, their backward through D and G, and Adam;
    d_step            the rest: the discriminator on the real and the detached fake, its losses, backward, Adam and
                      the step's logging;
    g_backward, d_backward  the two ``manual_backward`` calls alone (inside the phases above).

Official side by side: when ``--official-dir`` (default ``../shared/anchors/x2ct-official`` next to the repository)
exists and ``--official-python`` imports easydict, its ``official_step.py`` times the official X2CT-GAN step in a
subprocess for the comparable cases (CPU, biplanar, batch 1, 32-true / bf16-mixed, eager), interleaved with ours in
alternating order (``--rounds`` repeats each pair), and the table shows ours/official.

Saves JSON (default ``benchmarks/results/train_<host>_<device>.json``) with the machine and what else ran on it before
and after, and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import site
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from x2ct.config_dir import CONFIG_DIR  # noqa: E402
from x2ct.utils.machine import describe_machine, host_activity  # noqa: E402
from x2ct.utils.precision import resolve_precision  # noqa: E402

RESULTS_DIR = REPO / "benchmarks" / "results"
GENERATOR_CONFIG_DIR = Path(CONFIG_DIR) / "model" / "generator"
DEFAULT_OFFICIAL_DIR = REPO.parent / "shared" / "anchors" / "x2ct-official"
DEFAULT_OFFICIAL_PYTHON = "/tmp/x2ct-official-venv/bin/python"
OFFICIAL_SCRIPT = "official_step.py"
OFFICIAL_MODULES = "import easydict, h5py, scipy, torch, yaml"
OFFICIAL_GENERATOR = "biplanar"  # the official step is the paper's biplanar model at batch 1
OFFICIAL_BATCH = 1
OFFICIAL_PRECISION = {"32-true": "fp32", "bf16-mixed": "bf16"}
# Generator config keys that switch activation checkpointing on, looked up in this order.
CHECKPOINT_KNOBS = ("activation_checkpointing", "checkpointing", "gradient_checkpointing", "checkpoint_decoder")
COMPILE_KNOB = "compile"  # a model config key, if the module gets its own torch.compile switch
RESULT_PREFIX = "RESULT "
PHASES = ("g_forward", "g_backward_via_d", "d_step", "g_backward", "d_backward")
DEFAULT_CASE_TIMEOUT_S = 1800
ERROR_CHARS = 2000
ERROR_CELL_CHARS = 40  # of an error shown in the table
BUSY_COMMAND_CHARS = 60  # of another process's command line in the printed activity line
SEED = 0
GIB = 2**30
KIB = 1024  # ru_maxrss is in KiB on Linux


@dataclass(frozen=True)
class Case:
    """One benchmarked configuration; ``precision`` is a Lightning precision string (32-true, bf16-mixed, ...)."""

    generator: str
    cube: int
    batch: int
    precision: str
    compile: bool
    checkpointing: bool
    device: str

    def official_precision(self) -> str | None:
        """official_step.py's precision name when the official step is comparable to this case, else None."""
        comparable = (
            self.device == "cpu"
            and self.generator == OFFICIAL_GENERATOR
            and self.batch == OFFICIAL_BATCH
            and not self.compile
            and not self.checkpointing
        )
        return OFFICIAL_PRECISION.get(self.precision) if comparable else None

    def label(self) -> str:
        extras = "".join((" compile" if self.compile else "", " ckpt" if self.checkpointing else ""))
        return f"{self.generator} {self.cube}^3 b{self.batch} {self.precision}{extras}"


def discover_generators() -> list[str]:
    """Names of the generator configs (conf/model/generator/*.yaml), sorted."""
    return sorted(path.stem for path in GENERATOR_CONFIG_DIR.glob("*.yaml"))


# ------------------------------------------------------------------------------------------------- one case
def aligned_projection_matrices(cube: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(3, 4) float32 matrices of the aligned parallel AP and 90-degree lateral views of a ``cube``^3 CT at 1 mm,
    mapping homogeneous CT grid coordinates (x along W, y along H, z along D, in [-1, 1]) to homogeneous image
    coordinates (u along columns, v along rows); and where they come from. From :mod:`x2ct.drr.projection` when it
    is importable, else the benchmark's own (u = x, v = z for xray1; u = y, v = z for xray2). The values do not
    change the cost of a step."""
    try:
        from x2ct.drr.geometry import ViewSpec
        from x2ct.drr.projection import projection_matrix
    except ImportError as err:
        ap = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
        lateral = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
        return ap, lateral, f"the benchmark's own aligned parallel matrices (x2ct.drr.projection: {err})"
    shape, spacing = (cube, cube, cube), (1.0, 1.0, 1.0)
    views = (ViewSpec("xray1", 0.0), ViewSpec("xray2", 90.0, lateral=True))
    ap, lateral = (torch.from_numpy(projection_matrix(v, shape, spacing, geometry="parallel")).float() for v in views)
    return ap, lateral, "x2ct.drr.projection.projection_matrix, parallel AP and 90-degree lateral views"


class RandomTriplets(Dataset):
    """``length`` random training items shaped as the data module's: ``ct`` (1, D, H, W) and ``xray1``, ``xray2``
    (1, S, S) uniform in [0, 1], ``proj_xray1``, ``proj_xray2`` (3, 4) float32, ``case_id``; item i is seeded by i."""

    def __init__(self, length: int, cube: int, xray_size: int) -> None:
        self.length, self.cube, self.xray_size = length, cube, xray_size
        self.proj_xray1, self.proj_xray2, self.matrices_source = aligned_projection_matrices(cube)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        generator = torch.Generator().manual_seed(SEED + index)
        return {
            "ct": torch.rand(1, self.cube, self.cube, self.cube, generator=generator),
            "xray1": torch.rand(1, self.xray_size, self.xray_size, generator=generator),
            "xray2": torch.rand(1, self.xray_size, self.xray_size, generator=generator),
            "proj_xray1": self.proj_xray1.clone(),
            "proj_xray2": self.proj_xray2.clone(),
            "case_id": f"random{index:04d}",
        }


class StepClock:
    """Times the Trainer's training steps (after ``warmup``) and their phases: marks at the step start, at the end
    of the generator forward (a forward hook), at the end of the generator's optimizer step (a step post-hook),
    around each ``manual_backward``, and at the step end. On CUDA every mark synchronizes first."""

    def __init__(self, warmup: int, cuda: bool) -> None:
        self.warmup, self.cuda = warmup, cuda
        self.steps: list[dict[str, float]] = []
        self._marks: dict[str, Any] = {}

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def callback(self):
        """A Lightning Callback bound to this clock."""
        from lightning.pytorch.callbacks import Callback

        clock = self

        class _Clock(Callback):
            def on_train_start(self, trainer, pl_module) -> None:
                clock.attach(pl_module, trainer.optimizers[0])

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                clock._marks = {"backward": [], "start": clock.now()}

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                clock.finish_step(batch_idx)

        return _Clock()

    def attach(self, module: torch.nn.Module, optimizer_g: torch.optim.Optimizer) -> None:
        """Hook the module's generator (its outermost module, compiled or not), G's optimizer and manual_backward."""

        @torch.compiler.disable
        def generator_done(*_: Any) -> None:
            self._marks.setdefault("g_forward_end", self.now())

        @torch.compiler.disable
        def g_optimizer_done(*_: Any) -> None:
            self._marks.setdefault("g_step_end", self.now())

        module.generator.register_forward_hook(generator_done)
        optimizer_g.register_step_post_hook(g_optimizer_done)
        manual_backward = module.manual_backward

        def timed_backward(loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
            start = self.now()
            manual_backward(loss, *args, **kwargs)
            self._marks["backward"].append(self.now() - start)

        module.manual_backward = timed_backward

    def finish_step(self, batch_idx: int) -> None:
        end = self.now()
        if batch_idx < self.warmup:
            return
        marks = self._marks
        record = {"step": end - marks["start"]}
        if "g_forward_end" in marks:
            record["g_forward"] = marks["g_forward_end"] - marks["start"]
            if "g_step_end" in marks:  # absent when a non-finite loss skipped the generator step
                record["g_backward_via_d"] = marks["g_step_end"] - marks["g_forward_end"]
                record["d_step"] = end - marks["g_step_end"]
        for name, seconds in zip(("g_backward", "d_backward"), marks["backward"], strict=False):
            record[name] = seconds
        self.steps.append(record)


def checkpointing_knob(generator_cfg: Any) -> str | None:
    """The generator config's activation-checkpointing key, if it has one."""
    return next((knob for knob in CHECKPOINT_KNOBS if knob in generator_cfg), None)


def model_choice(generator: str) -> str:
    """The Hydra override choosing the model of ``generator``: ``model=<name>`` when conf/model/<name>.yaml pairs
    that generator with its own discriminator settings, else ``model/generator=<name>`` in the default model."""
    if (Path(CONFIG_DIR) / "model" / f"{generator}.yaml").is_file():
        return f"model={generator}"
    return f"model/generator={generator}"


def compose_case(case: Case, output_dir: str, overrides: Sequence[str]):
    """The composed train config of ``case`` (Hydra compose API on x2ct's config dir)."""
    from hydra import compose, initialize_config_dir

    case_overrides = [
        model_choice(case.generator),
        f"data.cube={case.cube}",
        f"data.batch_size={case.batch}",
        f"trainer={'gpu' if case.device == 'cuda' else 'cpu'}",
        f"trainer.precision={case.precision}",
        f"paths.output_dir={output_dir}",
        *overrides,
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=case_overrides)


def run_case(case: Case, warmup: int, steps: int, overrides: Sequence[str]) -> dict[str, Any]:
    """Build the case's model and Trainer from the configs, fit warm-up + timed steps, return the figures."""
    from hydra.utils import instantiate

    torch.manual_seed(SEED)
    notes: list[str] = []
    cuda = case.device == "cuda"
    output_dir = tempfile.mkdtemp(prefix="x2ct-bench-train-")
    cfg = compose_case(case, output_dir, overrides)
    checkpointing_applied = False
    if case.checkpointing:
        knob = checkpointing_knob(cfg.model.generator)
        if knob is None:
            notes.append(f"checkpointing skipped: no {'/'.join(CHECKPOINT_KNOBS)} key in model/generator")
        else:
            cfg.model.generator[knob] = True
            checkpointing_applied = True
    module_compiles = case.compile and COMPILE_KNOB in cfg.model
    if module_compiles:
        cfg.model[COMPILE_KNOB] = True
        notes.append(f"compiled by the module (model.{COMPILE_KNOB}=true)")
    model = instantiate(cfg.model)
    parameters = {
        name: sum(p.numel() for p in getattr(model, name).parameters()) for name in ("generator", "discriminator")
    }
    if case.compile and not module_compiles:
        model.generator = torch.compile(model.generator)
        model.discriminator = torch.compile(model.discriminator)
        notes.append("compiled by the benchmark: torch.compile(generator), torch.compile(discriminator)")
    xray_size = cfg.data.xray_size or case.cube
    data = RandomTriplets((warmup + steps) * case.batch, case.cube, xray_size)
    loader = DataLoader(data, batch_size=case.batch, shuffle=False, num_workers=0)
    clock = StepClock(warmup, cuda)
    precision, why = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    if why:
        notes.append(why)
    trainer = instantiate(
        cfg.trainer,
        precision=precision,
        callbacks=[clock.callback()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        limit_train_batches=None,
        max_epochs=1,
        max_steps=-1,
        default_root_dir=output_dir,
    )
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, train_dataloaders=loader)
    if len(clock.steps) != steps:
        raise RuntimeError(f"timed {len(clock.steps)} steps, expected {steps}")
    step_times = [record["step"] for record in clock.steps]
    median = statistics.median(step_times)
    result: dict[str, Any] = {
        "ok": True,
        "seconds_per_step_median": median,
        "seconds_per_step_all": step_times,
        "samples_per_s": case.batch / median,
        "phases_median_s": {
            phase: statistics.median(values)
            for phase in PHASES
            if (values := [record[phase] for record in clock.steps if phase in record])
        },
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB / GIB,
        "precision_used": precision,
        "checkpointing_applied": checkpointing_applied,
        "parameters": parameters,
        "torch_threads": torch.get_num_threads(),
        "projection_matrices": data.matrices_source,
        "model_config": model_choice(case.generator),
        "notes": notes,
    }
    if cuda:
        result["peak_gpu_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
        result["peak_gpu_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
    return result


def case_main(case_json: str, warmup: int, steps: int, overrides: Sequence[str]) -> None:
    """Subprocess entry: run one case and print its figures (or its error) as one RESULT line."""
    case = Case(**json.loads(case_json))
    try:
        result = run_case(case, warmup, steps, overrides)
    except Exception as err:  # an out-of-memory or compile failure is a result, not a crash of the benchmark
        result = {"ok": False, "error": f"{type(err).__name__}: {err}"[:ERROR_CHARS]}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# --------------------------------------------------------------------------------------------- subprocesses
def _result_line(stdout: str) -> dict[str, Any] | None:
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    return json.loads(lines[-1][len(RESULT_PREFIX) :]) if lines else None


def run_subprocess(command: list[str], timeout_s: float) -> dict[str, Any]:
    """Run ``command``, return its RESULT line's dict with ``wall_s`` and the load average at its start."""
    load = list(os.getloadavg())
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout_s:.0f} s", "load_average_at_start": load}
    result = _result_line(done.stdout)
    if result is None:
        tail = (done.stderr or done.stdout).strip()[-ERROR_CHARS:]
        result = {"ok": False, "error": f"exit status {done.returncode}, no result line: {tail}"}
    result.setdefault("ok", True)
    result["wall_s"] = time.perf_counter() - start
    result["load_average_at_start"] = load
    return result


def ours_command(case: Case, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(asdict(case))]
    command += ["--warmup", str(args.warmup), "--steps", str(args.steps)]
    return command + [f"--override={override}" for override in args.override]


def official_command(case: Case, args: argparse.Namespace) -> list[str]:
    script = str(Path(args.official_dir) / OFFICIAL_SCRIPT)
    precision = case.official_precision() or ""
    counts = ["--warmup", str(args.warmup), "--iters", str(args.steps)]
    return [args.official_python, script, "--precision", precision, "--cube", str(case.cube), *counts]


def throwaway_venv_hint(python: str) -> str:
    """How to make a venv that sees this environment's packages and adds easydict, leaving this one untouched."""
    venv = Path(python).parent.parent
    packages = f"{venv}/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    return (
        f"{sys.executable} -m venv {venv} && {venv}/bin/pip install easydict && "
        f"echo {site.getsitepackages()[0]} > {packages}/x2ct-env.pth"
    )


def official_status(args: argparse.Namespace) -> str | None:
    """None when the official step can run, else why not (with the command that fixes it, where one does)."""
    if args.no_official:
        return "disabled (--no-official)"
    script = Path(args.official_dir) / OFFICIAL_SCRIPT
    if not script.is_file():
        return f"{script} not found"
    if not Path(args.official_python).exists():
        return f"{args.official_python} not found; make it with: {throwaway_venv_hint(args.official_python)}"
    check = subprocess.run([args.official_python, "-c", OFFICIAL_MODULES], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        missing = check.stderr.strip().splitlines()[-1] if check.stderr.strip() else "import failed"
        return f"{args.official_python}: {missing}; add easydict with: {throwaway_venv_hint(args.official_python)}"
    return None


def official_record(result: dict[str, Any]) -> dict[str, Any]:
    """official_step.py's result under our field names."""
    if "seconds_median" not in result:
        return result
    return {
        "ok": True,
        "seconds_per_step_median": result["seconds_median"],
        "seconds_per_step_all": result["seconds_all"],
        "peak_rss_gib": result["peak_rss_gib"],
        **{k: v for k, v in result.items() if k not in ("seconds_median", "seconds_all", "peak_rss_gib")},
    }


# ------------------------------------------------------------------------------------------------- summary
def summarize(runs: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    """Pool the timed steps of the successful runs: median s/step, samples/s, peak memory (max), phases (median)."""
    good = [run for run in runs if run.get("ok")]
    if not good:
        return {"ok": False, "error": runs[-1].get("error", "no run") if runs else "no run"}
    times = [t for run in good for t in run["seconds_per_step_all"]]
    median = statistics.median(times)
    summary: dict[str, Any] = {"ok": True, "seconds_per_step_median": median, "samples_per_s": batch / median}
    for key in ("peak_rss_gib", "peak_gpu_allocated_gib", "peak_gpu_reserved_gib"):
        if all(key in run for run in good):
            summary[key] = max(run[key] for run in good)
    phases = {
        p: statistics.median(vs)
        for p in PHASES
        if (vs := [r["phases_median_s"][p] for r in good if p in r.get("phases_median_s", {})])
    }
    if phases:
        summary["phases_median_s"] = phases
    return summary


def ratios(ours: dict[str, Any], official: dict[str, Any]) -> dict[str, float]:
    out = {}
    if ours.get("ok") and official.get("ok"):
        out["seconds_per_step"] = ours["seconds_per_step_median"] / official["seconds_per_step_median"]
        out["peak_rss"] = ours["peak_rss_gib"] / official["peak_rss_gib"]
    return out


def activity_line(activity: dict[str, Any]) -> str:
    """One line on what else ran: load averages and the busiest other processes."""
    if not activity.get("available"):
        return "host activity: unavailable (no /proc)"
    others = [p for p in activity["top_processes"] if not p["self"]]
    busiest = "; ".join(f"{p['cpu_percent']:.0f}% {p['command'][:BUSY_COMMAND_CHARS]}" for p in others) or "none"
    load = " ".join(f"{value:.2f}" for value in activity["load_average_1_5_15"])
    return f"host load (1/5/15 min) {load}; other busy processes: {busiest}"


def _fmt(value: Any, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def format_table(records: list[dict[str, Any]], device: str) -> str:
    memory = "peak GPU GiB" if device == "cuda" else "peak RSS GiB"
    header = ["case", "s/step", "samples/s", memory, "G fwd", "G bwd via D", "D step", "official s", "ours/off"]
    rows = [header]
    for record in records:
        ours = record["ours"]
        if not ours.get("ok"):
            rows.append([record["label"], "error: " + ours.get("error", "")[:ERROR_CELL_CHARS], *[""] * 7])
            continue
        phases = ours.get("phases_median_s", {})
        official = record.get("official", {})
        ratio = record.get("ours_over_official", {}).get("seconds_per_step")
        peak = ours.get("peak_gpu_allocated_gib") if device == "cuda" else ours.get("peak_rss_gib")
        rows.append(
            [
                record["label"],
                _fmt(ours["seconds_per_step_median"]),
                _fmt(ours["samples_per_s"]),
                _fmt(peak),
                _fmt(phases.get("g_forward")),
                _fmt(phases.get("g_backward_via_d")),
                _fmt(phases.get("d_step")),
                _fmt(official.get("seconds_per_step_median")),
                _fmt(ratio, ".2f"),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)


# -------------------------------------------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cubes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--precision", nargs="+", default=["32-true"], help="Lightning precision strings")
    parser.add_argument(
        "--compile", nargs="?", const="on", default="off", choices=("off", "on", "both"), help="torch.compile"
    )
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing (if the config has it)")
    parser.add_argument("--generators", nargs="+", default=None, help="names in conf/model/generator (default: all)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="runs of each case (and of its official twin)")
    parser.add_argument("--case-timeout", type=float, default=DEFAULT_CASE_TIMEOUT_S, help="seconds per subprocess")
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    parser.add_argument("--official-dir", default=str(DEFAULT_OFFICIAL_DIR))
    parser.add_argument("--official-python", default=DEFAULT_OFFICIAL_PYTHON)
    parser.add_argument("--no-official", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.steps < 1 or args.rounds < 1:
        parser.error(f"need --warmup >= 0, --steps >= 1, --rounds >= 1; got {args.warmup}, {args.steps}, {args.rounds}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    known = discover_generators()
    unknown = sorted(set(args.generators or []) - set(known))
    if unknown:
        parser.error(f"unknown generator config(s) {unknown}; {GENERATOR_CONFIG_DIR} has {known}")
    args.generators = args.generators or known
    return args


def build_cases(args: argparse.Namespace) -> list[Case]:
    compile_choices = {"off": (False,), "on": (True,), "both": (False, True)}[args.compile]
    return [
        Case(generator, cube, batch, precision, compiled, args.checkpointing, args.device)
        for generator, cube, batch, precision, compiled in itertools.product(
            args.generators, args.cubes, args.batch, args.precision, compile_choices
        )
    ]


def save(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.case is not None:
        case_main(args.case, args.warmup, args.steps, args.override)
        return None
    skip_official = official_status(args)
    if skip_official:
        print(f"official step: skipped: {skip_official}", flush=True)
    report: dict[str, Any] = {
        "benchmark": "train_step (X2CTGANModule.training_step under a Lightning Trainer)",
        "machine": describe_machine(),
        "host_activity_before": host_activity(),
        "settings": {
            "device": args.device,
            "warmup_steps": args.warmup,
            "timed_steps": args.steps,
            "rounds": args.rounds,
            "overrides": args.override,
            "generators": args.generators,
        },
        "official": {"skipped": skip_official} if skip_official else {"dir": args.official_dir},
        "cases": [],
    }
    print("before: " + activity_line(report["host_activity_before"]), flush=True)
    out = args.out or RESULTS_DIR / f"train_{report['machine']['hostname']}_{args.device}.json"
    for index, case in enumerate(build_cases(args)):
        ours_runs: list[dict[str, Any]] = []
        official_runs: list[dict[str, Any]] = []
        with_official = not skip_official and case.official_precision() is not None
        for round_index in range(args.rounds):
            official_first = with_official and (index + round_index) % 2 == 1
            order = ("official", "ours") if official_first else ("ours", "official")
            for who in order:
                if who == "ours":
                    ours_runs.append(run_subprocess(ours_command(case, args), args.case_timeout))
                elif with_official:
                    run = run_subprocess(official_command(case, args), args.case_timeout)
                    official_runs.append(official_record(run))
        record: dict[str, Any] = {"label": case.label(), **asdict(case), "ours": summarize(ours_runs, case.batch)}
        record["runs"] = ours_runs
        if with_official:
            record["official"] = summarize(official_runs, OFFICIAL_BATCH)
            record["official_runs"] = official_runs
            record["ours_over_official"] = ratios(record["ours"], record["official"])
        print(json.dumps({k: record[k] for k in ("label", "ours")} | {"official": record.get("official")}), flush=True)
        report["cases"].append(record)
        save(report, out)  # after every case, so that a run stopped by a time limit keeps what it measured
    report["host_activity_after"] = host_activity()
    save(report, out)
    table = format_table(report["cases"], args.device)
    print("after: " + activity_line(report["host_activity_after"]))
    print(table)
    print(f"saved {out}")
    return report


if __name__ == "__main__":
    finished = main()
    if finished and not all(case["ours"].get("ok") for case in finished["cases"]):
        raise SystemExit("some cases failed (see their errors above and in the JSON)")
