"""Run a command; print one JSON line with its wall time, CPU time (user+sys) and peak RSS
(from wait4 of exactly that child), its exit code and its stdout's last line."""
import json, os, subprocess, sys, time

start = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
out, err = p.communicate()
wall = time.monotonic() - start
# measure.py runs exactly one child: RUSAGE_CHILDREN is that child (and its descendants)
ru = __import__("resource").getrusage(__import__("resource").RUSAGE_CHILDREN)
last = out.decode(errors="replace").strip().splitlines()[-1:] or [""]
print(json.dumps({
    "code": p.returncode, "wall_s": round(wall, 3), "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
    "rss_mib": round(ru.ru_maxrss / 1024, 1), "stdout": last[0][:500],
    "stderr": err.decode(errors="replace")[-800:] if p.returncode else "",
}))
