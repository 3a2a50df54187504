#!/usr/bin/env python3
"""Interleaved start-to-exit timings: each round runs every command once, in a random order.

hyperfine runs each command's runs in one block, so on a loaded machine (or one whose state
drifts as runs pile up, e.g. ext4 skipping recently deleted inodes) the blocks see different
conditions. Interleaving gives every command the same ones.

    interleave.py RUNS NAME=COMMAND...   (COMMAND is split on spaces, no shell)
"""
import random
import statistics
import subprocess
import sys
import time


def main() -> int:
    runs = int(sys.argv[1])
    commands = [arg.split("=", 1) for arg in sys.argv[2:]]
    warmup = 5
    times = {name: [] for name, _ in commands}
    for round_ in range(warmup + runs):
        for name, command in random.sample(commands, len(commands)):
            start = time.perf_counter()
            done = subprocess.run(command.split(), stdout=subprocess.DEVNULL)
            elapsed = (time.perf_counter() - start) * 1000
            if done.returncode != 0:
                print(f"{name}: exit code {done.returncode}", file=sys.stderr)
                return 1
            if round_ >= warmup:
                times[name].append(elapsed)
    for name, _ in commands:
        t = sorted(times[name])
        print(f"{name:8} median {statistics.median(t):6.2f} ms  p25 {t[len(t) // 4]:6.2f}  "
              f"min {t[0]:6.2f}  ({len(t)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
