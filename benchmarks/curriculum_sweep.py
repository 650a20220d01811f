"""Run several training variants side by side (one process each) and summarize their curricula.

Used on the GPU machine: one H200 runs a handful of tiny-controller trainings at once.

    python benchmarks/curriculum_sweep.py --out OUT --minutes 8 \\
        --variant base: --variant big:--batch-size=128,--lr=2e-3

Each variant is ``name:comma-separated llamacpu train flags``. Writes OUT/NAME/metrics.jsonl,
OUT/NAME.log and OUT/summary.json (stages passed, the step and second each passed at, the last
competence checks, episodes per second).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def summarize(run: Path, started: float) -> dict:
    stages, checks, speed = [], [], None
    path = run / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["event"] == "stage_end":
                stages.append(r)
            elif r["event"] == "check":
                checks.append((r["step"], r["stage"], r.get("digits"), r["accuracy"], r["plan_exact"]))
            elif r["event"] == "train":
                speed = r["episodes_per_s"]
    return {"stages": stages, "last_checks": checks[-6:], "episodes_per_s": speed,
            "wall_s": time.time() - started}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per process")
    ap.add_argument("--final-eval", default="", help="after training, `llamacpu eval --digits` these sizes "
                    "('auto': each run's task's default sizes)")
    ap.add_argument("--trials", type=int, default=500)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    procs = {}
    started = time.time()
    for spec in args.variant:
        name, _, flags = spec.partition(":")
        cmd = [sys.executable, "-m", "llamacpu.cli", "train", "--run", str(args.out / name), "--quiet",
               "--no-traces", *[f for f in flags.split(",") if f]]
        log = open(args.out / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    deadline = started + args.minutes * 60
    while time.time() < deadline and any(p.poll() is None for p, _ in procs.values()):
        time.sleep(5)
    for p, _ in procs.values():
        if p.poll() is None:
            p.terminate()
    summary = {name: summarize(args.out / name, started) for name in procs}
    if args.final_eval:
        sizes = [] if args.final_eval == "auto" else ["--digits", args.final_eval]
        evals = {name: subprocess.Popen([sys.executable, "-m", "llamacpu.cli", "eval", "--run", str(args.out / name),
                                         *sizes, "--trials", str(args.trials), "--json"],
                                        stdout=subprocess.PIPE, text=True, env=env) for name in procs}
        for name, p in evals.items():
            out, _ = p.communicate()
            summary[name]["eval"] = json.loads(out) if p.returncode == 0 and out.strip() else None
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    for name, s in summary.items():
        passed = [(st["stage"], st["at_step"], round(st["accuracy"], 3)) for st in s["stages"]]
        print(name, "passed:", passed, "last:", s["last_checks"][-4:], "ep/s:", s["episodes_per_s"])
        if s.get("eval"):
            print("   eval:", [(r["digits"], r["accuracy"], r["plan_exact"], r["from_target"]) for r in s["eval"]["results"]])


if __name__ == "__main__":
    main()
