"""CPU seconds by process over a command's life: runs the command, reads every process's user + system time from
/proc twice a second, and prints at the end what each process that ran beside it used (its name and nice value),
largest first. It shows who takes the cores during a search stage: the driver (nice 0), Ray's workers (nice 15),
Ray's own daemons.

    python3 bench/process_cpu.py .venv/bin/nas search --budget 300M --strategy oneshot \\
        --supernet results/bench-supernet --no-confirm --results /tmp/pc --name r

Linux only. A process that exits between two reads loses its last half second; processes under 0.05 s are left out.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def snapshot() -> dict[int, tuple[str, float, int]]:
    """pid -> (name, CPU seconds so far, nice) of every process /proc lists."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        r = st.rfind(")")
        fields = st[r + 2:].split()
        out[int(p)] = (st[st.find("(") + 1:r], (int(fields[11]) + int(fields[12])) / HZ, int(fields[16]))
    return out


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    before = snapshot()
    t0 = time.time()
    proc = subprocess.Popen(sys.argv[1:])
    last: dict[int, tuple[str, float, int]] = {}
    while proc.poll() is None:
        last.update(snapshot())
        time.sleep(0.5)
    wall = time.time() - t0
    by: dict[str, float] = collections.defaultdict(float)
    for pid, (name, cpu, nice) in last.items():
        used = cpu - before.get(pid, (name, 0.0, nice))[1]
        if used >= 0.05:
            by[f"{name} (nice {nice}{', the command' if pid == proc.pid else ''})"] += used
    print(f"wall {wall:.1f} s, exit {proc.returncode}")
    for k, v in sorted(by.items(), key=lambda kv: -kv[1]):
        print(f"  {v:7.1f} s CPU  {k}")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
