"""Time `previews list` over a large registry: 1,000 previews, 20,000 runs.

Generates artifact folders in ansible-runner's layout in a temporary directory, then
times, in one run so that the ratios hold on a noisy machine:

- baseline: folding every run from its artifact folder, with no index (what a deleted
  index costs once);
- index only: the runs' facts from index.json, refolded (what a deleted fold.json costs);
- listed: registry.list_previews with both caches in place (every later listing).

Usage: .venv/bin/python bench/registry_listing.py [--previews N] [--runs-per-preview K]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge import registry

GOAL_MS = 200.0
REPEATS = 7


def generate(root: Path, previews: int, runs_per_preview: int) -> int:
    """Write the artifact folders; every fifth preview ends with a cleanup."""
    artifacts = root / "artifacts"
    artifacts.mkdir(parents=True)
    count = 0
    for number in range(1, previews + 1):
        for step in range(runs_per_preview):
            last = step == runs_per_preview - 1
            action = "cleanup" if last and number % 5 == 0 else "deploy"
            day, second = divmod(step * previews + number, 86400)
            ident = f"202601{day + 1:02d}T{second:06d}000000Z_demo-pr{number}_{action}_{count:06x}"
            facts = {
                "id": f"demo-pr{number}",
                "number": number,
                "action": action,
                "sha": f"{count:040x}",
                "ref": f"feature/{number}",
                "author": "octocat",
                "host": "sandbox",
                "run": ident,
                "time": f"2026-01-{day + 1:02d}T{second:06d}.000000Z",
                "status": "active",
                "ports": {"web": 40000 + number, "api": 41000 + number},
                "urls": {"web": f"https://pr-{number}.previews.test/"},
            }
            _write_run(artifacts / ident, facts, "failed" if step % 7 == 3 else "successful")
            count += 1
    return count


def _write_run(folder: Path, facts: dict, status: str) -> None:
    events = folder / "job_events"
    events.mkdir(parents=True)
    for counter, name in enumerate(("playbook_on_start", "runner_on_ok"), start=1):
        event = {"event": name, "event_data": {}}
        (events / f"{counter}-{name}.json").write_text(json.dumps(event))
    stats = {"event": "playbook_on_stats", "event_data": {"artifact_data": {"preview": facts}}}
    (events / "3-stats.json").write_text(json.dumps(stats))
    (folder / "stdout").write_text("PLAY RECAP\n")
    (folder / "rc").write_text("0")
    (folder / "status").write_text(status)


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return (time.perf_counter() - start) * 1000, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previews", type=int, default=1000)
    parser.add_argument("--runs-per-preview", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="previews-bench-") as directory:
        root = Path(directory)
        generated_ms, runs = timed(lambda: generate(root, args.previews, args.runs_per_preview))

        listdir_ms = min(timed(lambda: os.listdir(root / "artifacts"))[0] for _ in range(REPEATS))
        baseline_ms, cold = timed(lambda: registry.list_previews(root))
        index_bytes = (root / "index.json").stat().st_size
        listed = [timed(lambda: registry.list_previews(root)) for _ in range(REPEATS)]
        listed_ms = statistics.median(ms for ms, _ in listed)
        if listed[0][1] != cold:
            print("error: the cached listing differs from the full fold", file=sys.stderr)
            return 2
        (root / registry.FOLD_NAME).unlink()
        index_only_ms, _ = timed(lambda: registry.list_previews(root))

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"machine: {machine}")
    print(f"generated {runs} runs of {args.previews} previews in {generated_ms / 1000:.1f} s")
    print(f"active previews listed: {len(cold)}; index size: {index_bytes / 1e6:.1f} MB")
    print(f"listdir of the artifacts (floor):     {listdir_ms:8.1f} ms")
    print(f"baseline, fold with no index:          {baseline_ms:8.1f} ms")
    print(f"runs from index.json, fold.json gone:  {index_only_ms:8.1f} ms")
    print(f"list with both caches (median of {REPEATS}): {listed_ms:6.1f} ms")
    print(f"ratio listed / baseline:               {listed_ms / baseline_ms:8.3f}")
    verdict = "meets" if listed_ms <= GOAL_MS else "MISSES"
    print(f"goal <= {GOAL_MS:.0f} ms: {verdict}")
    return 0 if listed_ms <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
