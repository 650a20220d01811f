"""Records of training runs, from their folders: what benchmarks/results/task_curricula_*.json hold.

    python benchmarks/run_records.py --setting "..." --device-name "NVIDIA H200" --commit SHA \
        --command NAME='llamacpu train ...' --status NAME='CUDA out of memory' RUN_DIR ... > record.json

For each run folder (its ``config.json`` and ``metrics.jsonl``): the task, the curriculum's size,
the last step logged, every stage end (with ``wall_s``, the seconds from the run's start, where
the run logged them), every rewind of the forgetting guard, the last competence check of every
size (the check that tells whether earlier sizes were kept) and the episodes per second of the
last ten logged steps.
A run's log (``RUN_DIR.log`` beside the folder) names an out-of-memory death or a stop by signal
when ``--status`` does not.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any


def _events(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _status(run: Path) -> str:
    log = run.with_name(run.name + ".log")
    text = log.read_text(errors="replace") if log.is_file() else ""
    if "OutOfMemoryError" in text:
        return "CUDA out of memory"
    if "SIGTERM" in text:
        return "stopped by SIGTERM"
    return "unknown (no log)" if not text else "ended"


def record(run: Path) -> dict[str, Any]:
    """One run's record: config, stage ends, last check per size, speed."""
    config = json.loads((run / "config.json").read_text())
    events = _events(run)
    train = [e for e in events if e["event"] == "train"]
    last_check: dict[int, dict[str, Any]] = {}
    for e in events:
        if e["event"] == "check":
            last_check[e["digits"]] = {k: e[k] for k in ("step", "accuracy", "trials", "plan_exact") if k in e}
    tail = train[-10:]
    return {
        "task": config["train"].get("task", "add"),
        "max_digits": config["train"]["max_digits"],
        "batch_size": config["train"]["batch_size"],
        "preset": config["controller"]["preset"],
        "steps": train[-1]["step"] if train else 0,
        "episodes_per_s_last10": round(sum(e["episodes_per_s"] for e in tail) / len(tail), 1) if tail else None,
        "status": _status(run),
        "stage_ends": [{k: e[k] for k in ("stage", "at_step", "passed", "accuracy", "wall_s") if k in e}
                       for e in events if e["event"] == "stage_end"],
        "rewinds": [{k: e[k] for k in ("step", "stage", "fallen", "to_step", "lr") if k in e}
                    for e in events if e["event"] == "rewind"],
        "last_check_per_size": [{"digits": d, **last_check[d]} for d in sorted(last_check)],
    }


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"run_records.py: {flag} takes NAME=VALUE, not {item!r}")
        out[name] = value
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders")
    p.add_argument("--setting", default="", help="how the runs shared the machine")
    p.add_argument("--device-name", required=True, help="as torch names it, e.g. 'NVIDIA H200'")
    p.add_argument("--commit", required=True)
    p.add_argument("--date", default=datetime.date.today().isoformat())
    p.add_argument("--command", action="append", default=[], help="NAME=COMMAND (one per run)")
    p.add_argument("--status", action="append", default=[], help="NAME=STATUS, overriding the log's")
    args = p.parse_args()
    commands, statuses = _pairs(args.command, "--command"), _pairs(args.status, "--status")
    runs = {}
    for run in args.runs:
        if not (run / "metrics.jsonl").is_file():
            raise SystemExit(f"run_records.py: {run} has no metrics.jsonl")
        runs[run.name] = {"command": commands.get(run.name, ""), **record(run)}
        if run.name in statuses:
            runs[run.name]["status"] = statuses[run.name]
    json.dump({"benchmark": "task_curricula", "device_name": args.device_name, "date": args.date,
               "commit": args.commit, "setting": args.setting, "runs": runs}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
