#!/usr/bin/python3
"""Sample memory and CPU of processes by name, smem-style, from /proc.

    bench/procmon.py --comm apache2 [--comm NAME...] [--interval 0.5] OUT

Every INTERVAL seconds it reads /proc/PID/stat, /proc/PID/status and
/proc/PID/smaps_rollup of every process whose comm is one of NAME. On
SIGTERM or SIGINT it takes one last sample and writes to OUT one line of
KEY=VALUE pairs:

    nproc         distinct processes seen
    rss_maxsum_kb sum over processes of each one's largest VmRSS
    rss_peak_kb   largest sum of VmRSS seen in one sample (simultaneous)
    pss_peak_kb   largest sum of Pss seen in one sample (shared pages split)
    rss_max1_kb   largest VmRSS of a single process
    cpu_s         sum over processes of the last utime+stime seen
    samples       number of samples taken

Used by bench/issue.sh for clients that are not one process (Apache with
mod_md, many lego processes), where /usr/bin/time cannot give peak memory.
"""
import os
import signal
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("ascii", "replace")
    except OSError:
        return None


def field_kb(text, key):
    if not text:
        return 0
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def main():
    args = sys.argv[1:]
    comms, interval, out = set(), 0.5, None
    while args:
        a = args.pop(0)
        if a == "--comm":
            comms.add(args.pop(0))
        elif a == "--interval":
            interval = float(args.pop(0))
        else:
            out = a
    if not comms or not out:
        sys.exit("usage: procmon.py --comm NAME [--interval S] OUT")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    rss_max = {}  # pid -> largest VmRSS (kB)
    cpu = {}  # (pid, starttime) -> last utime+stime (ticks)
    rss_peak = pss_peak = samples = 0

    def sample():
        nonlocal rss_peak, pss_peak, samples
        rss_sum = pss_sum = 0
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            st = read(f"/proc/{d}/stat")
            if not st:
                continue
            # comm is in parentheses and may hold spaces: split after ')'.
            lp, rp = st.find("("), st.rfind(")")
            if st[lp + 1 : rp] not in comms:
                continue
            rest = st[rp + 2 :].split()
            # rest[0] is field 3 (state): utime=14, stime=15, starttime=22
            ticks = int(rest[11]) + int(rest[12])
            key = (d, rest[19])
            cpu[key] = ticks
            rss = field_kb(read(f"/proc/{d}/status"), "VmRSS:")
            pss = field_kb(read(f"/proc/{d}/smaps_rollup"), "Pss:")
            rss_max[key] = max(rss_max.get(key, 0), rss)
            rss_sum += rss
            pss_sum += pss
        rss_peak = max(rss_peak, rss_sum)
        pss_peak = max(pss_peak, pss_sum)
        samples += 1

    while not stop:
        sample()
        deadline = time.monotonic() + interval
        while not stop and time.monotonic() < deadline:
            time.sleep(min(0.05, interval))
    sample()

    with open(out + ".tmp", "w") as f:
        f.write(
            "nproc=%d rss_maxsum_kb=%d rss_peak_kb=%d pss_peak_kb=%d "
            "rss_max1_kb=%d cpu_s=%.2f samples=%d\n"
            % (
                len(rss_max),
                sum(rss_max.values()),
                rss_peak,
                pss_peak,
                max(rss_max.values(), default=0),
                sum(cpu.values()) / TICK,
                samples,
            )
        )
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main()
