#!/usr/bin/env bash
# The systemd cgroup driver's cost (part of `make bench`): boots the systemd guest of
# `make test-systemd` (tests/systemd/run.sh, section "bench" = tests/systemd/bench.sh) and
# measures create + delete --force of a sleeping container with the cgroupfs driver and with
# --systemd-cgroup, for rrun, runc and crun side by side in the guest, interleaved round by
# round. Writes bench/systemd.md (RESULTS_SYSTEMD) with the medians and the ratios:
#   * systemd / cgroupfs for each runtime: what the driver costs on create;
#   * rrun / runc and rrun / crun for each driver.
# The guest runs under qemu TCG (software emulation): absolute times are many times a real
# machine's; only the ratios measured in one run mean something.
#
# Environment: RRUN_BIN (default: the release build), BENCH_ROUNDS (default 15),
# RESULTS_SYSTEMD (default bench/systemd.md), KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
RESULTS_SYSTEMD=${RESULTS_SYSTEMD:-$HERE/systemd.md}
RRUN_BIN=${RRUN_BIN:-$REPO/target/x86_64-unknown-linux-gnu/release/rrun}
log=$(mktemp -p /tmp rrun-bench-systemd.XXXXXX.log)
trap 'rm -f "$log"' EXIT

echo "== systemd driver: booting the systemd guest (section bench, ${BENCH_ROUNDS:-15} rounds)" >&2
start=$(date +%s)
set +e
RRUN_BIN=$RRUN_BIN SYSTEMD_SECTIONS=bench BENCH_ROUNDS=${BENCH_ROUNDS:-15} \
	bash "$REPO/tests/systemd/run.sh" >"$log" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ] || ! grep -q '^BENCH ' "$log"; then
	tail -n 40 "$log" >&2
	echo "bench/systemd.sh: the guest run failed (exit $rc)" >&2
	exit 1
fi

python3 - "$log" "$RESULTS_SYSTEMD" "$(($(date +%s) - start))" <<'PY'
import re, sys, datetime
log, out, secs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
facts = []
for line in open(log, errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"^BENCH (\S+) (\S+) (\S+) (\S+) (\d+)$", line)
    if m:
        rt, drv, med, mn, n = m.groups()
        if med != "-":
            rows[(rt, drv)] = (float(med), float(mn), int(n))
    elif line.startswith("guest: kernel") or line.startswith("guest: pid 1"):
        facts.append(line[len("guest: "):])
rts = [r for r in ("rrun", "runc", "crun") if (r, "cgroupfs") in rows or (r, "systemd") in rows]
def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"
lines = [
    "# The systemd cgroup driver: create + delete --force (ms, median)",
    "",
    f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC by `make bench` (bench/systemd.sh) in the",
    "systemd guest of `make test-systemd`: qemu TCG, software emulation, so absolute times are",
    "many times a real machine's; the ratios, from one interleaved run, are what to compare.",
    "",
] + [f"- {f}" for f in facts] + [
    "",
    "| runtime | cgroupfs | --systemd-cgroup | systemd / cgroupfs | runs |",
    "|---|---|---|---|---|",
]
for r in rts:
    c = rows.get((r, "cgroupfs"), (0, 0, 0))
    s = rows.get((r, "systemd"), (0, 0, 0))
    lines.append(f"| {r} | {c[0]:.0f} | {s[0]:.0f} | {ratio(s[0], c[0])} | {min(c[2], s[2])} |")
lines += ["", "| driver | rrun / runc | rrun / crun |", "|---|---|---|"]
for d in ("cgroupfs", "systemd"):
    rr = rows.get(("rrun", d), (0,))[0]
    lines.append(f"| {d} | {ratio(rr, rows.get(('runc', d), (0,))[0])} | {ratio(rr, rows.get(('crun', d), (0,))[0])} |")
lines += ["", f"Guest run (boot included): {secs} s.", ""]
open(out, "w").write("\n".join(lines))
print("\n".join(lines))
PY
echo "== wrote $RESULTS_SYSTEMD" >&2
