#!/usr/bin/env bash
# One prepared GPU run for issue 9: DRR views/s, training s/step, samples/s and peak memory of X2CTGANModule's own
# step for every generator config (128^3 batch 1 and 4, fp32 vs bf16-mixed, eager vs torch.compile; 256^3 batch 1
# with activation checkpointing where the generator has it), and the data loader's samples/s. About 8 minutes on
# one H100 / H200 (a whole-run budget stops it in time; each part also has its own limit).
#
# Before the run, on the CPU machine (the device image lacks hydra-core, omegaconf, antlr4, nibabel, pydicom):
#     .venv/bin/python benchmarks/stage_packages.py          # -> .bench/site (ignored by git), about 11 MiB
# On the device machine, from the repository root (carry .bench/site):
#     bash benchmarks/gpu_check.sh                            # OUT=<dir> to choose where the results go
# Writes at most 8 files under $OUT (default ./.bench/gpu): env.txt, drr_cuda.json, train_128_eager.json,
# train_256.json, loader.json, train_128_compile.json, gpu_check.log (every part's output) and summary.txt, and
# prints the summary. Environment: PYTHON (interpreter to use), GPU_CHECK_BUDGET_S (whole run, default 460),
# GPU_CHECK_PARTS (default "env drr train128 train256 loader compile", in order of importance),
# GPU_CHECK_SMOKE=1 (a CPU smoke run of the same flow at 32^3 with one small generator, to check the script).
set -u
cd "$(dirname "$0")/.."

export OUT="${OUT:-./.bench/gpu}"
mkdir -p "$OUT"
export LOG="$OUT/gpu_check.log"
: >"$LOG"
BUDGET_S="${GPU_CHECK_BUDGET_S:-460}"
SUMMARY_RESERVE_S=25   # kept back from the parts for the summary
MIN_PART_S=20          # a part that would get less than this is skipped
KILL_AFTER_S=10        # SIGKILL this long after a part's SIGTERM
PARTS="${GPU_CHECK_PARTS:-env drr train128 train256 loader compile}"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
export PYTHONPATH="$PWD:$PWD/.bench/site${PYTHONPATH:+:$PYTHONPATH}"
NEEDED_MODULES="torch, lightning, hydra, omegaconf, h5py, scipy, nibabel, pydicom, cv2, torchmetrics"
# Seconds each part may take at most (less when the run's budget has less left).
declare -A LIMIT_S=([env]=60 [drr]=90 [train128]=200 [train256]=130 [loader]=90 [compile]=300)

# The sizes of the real run, and of the CPU smoke run of the same flow.
if [ "${GPU_CHECK_SMOKE:-0}" = 1 ]; then
    export DEVICE=cpu CUBE=32 BIG_CUBE=32 BATCHES="1" GENERATORS="--generators ray_lifting" WARMUP=1 STEPS=1
    export DRR_SIZE=32 DRR_DETECTOR=32 DRR_VOLUMES=2 LOADER_CASES=4 LOADER_WORKERS="0 2"
    CUDA_CHECK="True"
else
    export DEVICE=cuda CUBE=128 BIG_CUBE=256 BATCHES="1 4" GENERATORS="" WARMUP=2 STEPS=3
    export DRR_SIZE=128 DRR_DETECTOR=200 DRR_VOLUMES=16 LOADER_CASES=24 LOADER_WORKERS="0 2 4"
    CUDA_CHECK="torch.cuda.is_available()"
fi

# ------------------------------------------------------------------------------------------ the interpreter
PY=""
for candidate in "${PYTHON:-}" .venv/bin/python python3 python; do
    [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
    if "$candidate" -c "import $NEEDED_MODULES; import torch; assert $CUDA_CHECK" >/dev/null 2>&1; then
        PY="$candidate"
        break
    fi
    echo "python candidate $candidate: $("$candidate" -c "import $NEEDED_MODULES; import torch; \
print('CUDA' if torch.cuda.is_available() else 'no CUDA device')" 2>&1 | tail -1)" | tee -a "$LOG"
done
if [ -z "$PY" ]; then
    echo "no python with CUDA torch and the project's packages; stage the pure-Python ones with" \
        "'.venv/bin/python benchmarks/stage_packages.py' on the CPU machine and carry .bench/site" | tee -a "$LOG"
    exit 1
fi
export PY
echo "python: $(command -v "$PY")" | tee -a "$LOG"

# ------------------------------------------------------------------------------------------------ the parts
part_env() {
    nvidia-smi >"$OUT/env.txt" 2>&1 || echo "no nvidia-smi" >>"$OUT/env.txt"
    echo "cpu cores: $(nproc)" >>"$OUT/env.txt"
    "$PY" - >>"$OUT/env.txt" 2>&1 <<'EOF_PY'
import lightning
import torch

print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("lightning", lightning.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(p.name, f"{p.total_memory / 2**30:.1f} GiB, sm {p.major}.{p.minor}, bf16 {torch.cuda.is_bf16_supported()}")
else:
    print("no CUDA device")
EOF_PY
    status=$?
    cat "$OUT/env.txt"
    return $status
}

part_drr() {  # batched AP + lateral views of DRR_SIZE^3 volumes at DRR_DETECTOR^2, both methods (bench_drr's part)
    "$PY" - <<'EOF_PY'
import json, os, sys
import torch
sys.path.insert(0, "benchmarks")
from bench_drr import bench_batched_throughput
from x2ct.utils.machine import describe_machine

env = os.environ
device = torch.device(env["DEVICE"])
figures = bench_batched_throughput(
    int(env["DRR_SIZE"]), 256, 5, device, detector=int(env["DRR_DETECTOR"]), batch_volumes=int(env["DRR_VOLUMES"])
)
report = {"machine": describe_machine(), "cuda" if device.type == "cuda" else "cpu_smoke": figures}
with open(os.path.join(env["OUT"], "drr_cuda.json"), "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(figures, indent=2))
EOF_PY
}

train() {  # bench_train.py on DEVICE with the run's generators, warm-up and timed steps, then the given options
    # shellcheck disable=SC2086  # GENERATORS and BATCHES are word lists
    "$PY" benchmarks/bench_train.py --device "$DEVICE" $GENERATORS --warmup "$WARMUP" --steps "$STEPS" \
        --no-official "$@"
}

part_train128() {  # every generator, eager: batch 1 and 4, fp32 and bf16-mixed
    # shellcheck disable=SC2086
    train --cubes "$CUBE" --batch $BATCHES --precision 32-true bf16-mixed --case-timeout 60 \
        --out "$OUT/train_128_eager.json"
}

part_train256() {  # every generator, 256^3 batch 1 bf16-mixed, activation checkpointing where the config has it
    train --cubes "$BIG_CUBE" --batch 1 --precision bf16-mixed --checkpointing --warmup 1 --case-timeout 80 \
        --out "$OUT/train_256.json"
}

part_loader() {  # the data module's train loader on freshly prepared phantoms
    # shellcheck disable=SC2086
    "$PY" benchmarks/bench_loader.py --prepare "$LOADER_CASES" --cube "$CUBE" --workers $LOADER_WORKERS --epochs 2 \
        --pin-memory --out "$OUT/loader.json"
}

part_compile() {  # every generator, torch.compile, 128^3 batch 4 bf16-mixed (compared with train128's eager runs)
    # shellcheck disable=SC2086
    train --cubes "$CUBE" --batch ${BATCHES##* } --precision bf16-mixed --compile --warmup 3 --case-timeout 200 \
        --out "$OUT/train_128_compile.json"
}
export -f part_env part_drr train part_train128 part_train256 part_loader part_compile

START=$SECONDS
FAILED=()
for name in $PARTS; do
    left=$((BUDGET_S - SUMMARY_RESERVE_S - (SECONDS - START)))
    limit="${LIMIT_S[$name]:-}"
    if [ -z "$limit" ]; then
        echo "== $name: unknown part (known: ${!LIMIT_S[*]})" | tee -a "$LOG"
        FAILED+=("$name (unknown)")
        continue
    fi
    [ "$limit" -lt "$left" ] && left="$limit"
    if [ "$left" -lt "$MIN_PART_S" ]; then
        echo "== $name: skipped, the run's budget is spent" | tee -a "$LOG"
        FAILED+=("$name (skipped: no time left)")
        continue
    fi
    begin=$SECONDS
    echo "== $name (at most ${left} s) $(date -u +%H:%M:%S)" | tee -a "$LOG"
    timeout -k "$KILL_AFTER_S" "$left" bash -c "part_$name" >>"$LOG" 2>&1
    status=$?
    echo "== $name: exit $status after $((SECONDS - begin)) s" | tee -a "$LOG"
    if [ "$status" -ne 0 ]; then
        FAILED+=("$name (exit $status$([ "$status" -eq 124 ] && echo ', timed out'))")
    fi
done

echo "== summary after $((SECONDS - START)) s" | tee -a "$LOG"
timeout -k "$KILL_AFTER_S" "$SUMMARY_RESERVE_S" "$PY" benchmarks/gpu_summary.py "$OUT" 2>&1 | tee "$OUT/summary.txt"
if [ "${#FAILED[@]}" -gt 0 ]; then
    printf 'FAILED part: %s\n' "${FAILED[@]}" | tee -a "$OUT/summary.txt"
    echo "see $LOG for their output"
    exit 1
fi
echo "all parts passed" | tee -a "$OUT/summary.txt"
