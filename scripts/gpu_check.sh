#!/usr/bin/env bash
# The checks that need a CUDA machine, in one short run (about 8 minutes on one H200):
#   1. the test suite with CUDA available: every test that takes the `device` fixture runs on cpu and cuda;
#   2. a 3-minute DRN-S x4 training run with bf16 autocast and channels-last (the paper's recipe otherwise);
#   3. `upscale` speed of the default model and DRN-S in fp32, fp16 and bf16, with fp16 checked for
#      black or non-finite output (benchmarks/bench_gpu.py, which writes REPORT section "gpu").
# Usage: bash scripts/gpu_check.sh [OUT_DIR]     (logs and the training run go to OUT_DIR, default gpu_check/)
# Needs a CUDA build of torch already installed (this script never installs torch) and ../shared/data.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check}"
mkdir -p "$out"
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script is for a GPU machine')" || exit 2
python3 -m pip install -q -e ".[test]" 2>&1 | tail -2
status=0
python3 -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))" | tee "$out/device.txt"

echo "== 1. test suite with CUDA (device-parametrised tests run on cuda too)"
timeout 420 python3 -m pytest -q -x -n 4 --dist worksteal -p no:cacheprovider 2>&1 | tail -25 | tee "$out/pytest.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
python3 -m pytest -q -p no:cacheprovider tests/test_devices.py -k cuda -rA 2>&1 | grep -E "PASSED|FAILED|SKIPPED|passed|failed" \
    | tail -30 | tee "$out/pytest_cuda.txt"

echo "== 2. DRN-S x4, 3 minutes, bf16 autocast, channels-last"
timeout 300 python3 -m dualsr train -c configs/drn_s_x4.yaml device=cuda train.amp=bf16 train.channels_last=true \
    train.max_minutes=3 val.val_freq=1000000 logger.print_freq=50 logger.progress_bar=false logger.use_tb_logger=false \
    "path.experiments_root=$out/runs" 2>&1 | tail -15 | tee "$out/train.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== 3. upscale speed: default model and DRN-S in fp32 / fp16 / bf16"
timeout 240 python3 benchmarks/bench_gpu.py 2>&1 | tail -20 | tee "$out/upscale.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
