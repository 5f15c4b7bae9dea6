#!/usr/bin/env bash
# The GPU figures of issue 15 in one run of under 8 minutes (each step has its own time limit):
#   1. what the machine offers (GPU, torch CUDA, onnxruntime's execution providers: a default install has only
#      the CPU one, and the ONNX stages then run on the CPU; `pip install onnxruntime-gpu` gives them CUDA);
#   2. the paper stack per stage at 1920x1080 (benchmarks/paper_stack.py, random official-format weights:
#      YOLO/ViTPose/MotionBERT stand-ins are smaller networks, so their timings are not the real models');
#   3. `ragar-data extract --preset paper` end to end on generated 1080p clips at batch 16 and 64, group size 4;
#   4. training iterations/s at batch 32, fp32 vs bf16: CLIP-GAR's stages and every registered model.
# Usage (in the repository root, after the README's install): bash benchmarks/gpu.sh [OUT_DIR]
# Writes OUT_DIR/gpu.log (default: ./gpu-bench) and prints it as it goes.
set -uo pipefail
out=${1:-gpu-bench}
device=${RAGAR_DEVICE:-cuda}  # RAGAR_DEVICE=cpu: a smoke run of the script itself
mkdir -p "$out"
log="$out/gpu.log"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() {  # step SECONDS TITLE COMMAND...: run with a time limit, log its output, go on when it fails
    local limit=$1 title=$2; shift 2
    echo "== $title (limit ${limit}s)" | tee -a "$log"
    local started=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    echo "== $title: exit ${PIPESTATUS[0]}, $((SECONDS - started)) s" | tee -a "$log"
}
: > "$log"
step 30 "machine" bash -c 'nvidia-smi -L; python -c "import torch, onnxruntime as o; print(\"torch\", torch.__version__, \"cuda\", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else \"\"); print(\"onnxruntime\", o.__version__, o.get_available_providers())"'
step 120 "paper stack per stage, 1920x1080, fp16" \
    python benchmarks/paper_stack.py --random --device "$device" --precision fp16 --width 1920 --height 1080 --clips 2 --seconds 2
python - "$work/models" <<'PY' >> "$log" 2>&1
import sys
from ragar_data.pipelines.backends.random_models import write_random_models
write_random_models(sys.argv[1])
PY
step 90 "generated 1080p clips" ragar-data synth "$work/synth" --subjects 1 --views 0,36,72,108 --combinations 0 \
    --conditions nm-01,nm-02 --seconds 2 --width 1920 --height 1080 --quiet
for batch in 16 64; do
    step 90 "extract --preset paper, batch $batch, group size 4" ragar-data extract --videos "$work/synth/videos" \
        --preset paper --models-dir "$work/models" --device "$device" --batch-size "$batch" --group-size 4 \
        --out "$work/dataset-$batch" --no-progress
done
step 150 "training iterations/s, batch 32, fp32 vs bf16" \
    python benchmarks/train_speed.py --batch-size 32 --iterations 10 --warmup 3 --models all
echo "log: $log"
