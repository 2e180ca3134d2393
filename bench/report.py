#!/usr/bin/env python3
"""Turn bench/out/* (written by bench/run.sh) into a markdown report and a chart.

usage: report.py OUTDIR RESULTS.md CHART.png
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

COLORS = {"rrun": "#d95f02", "runc": "#1f78b4", "crun": "#33a02c"}
EXTRA_COLORS = ["#e7298a", "#7570b3", "#66a61e", "#a6761d"]

NOTES = {
    "run": "`run -b B ID` of /bin/true, foreground (runtime deletes it on exit)",
    "rootless": "`run -b B ID` of /bin/true, foreground, as an unprivileged user ({user}) made for the bench "
                "and removed after it, inside the bench's private mount namespace (so the runtimes see plain "
                "cgroup v1 there too, and, rootless, use no cgroup): hyperfine itself runs as that user "
                "(`setpriv`, `env -i`). Bundle: `spec --rootless` made as the user (a user namespace mapping only "
                "its own uid and gid; no network namespace, unlike the other scenarios' bundle, and no "
                "cgroupsPath: not comparable with the run /bin/true row), the same for every runtime, with the user's own copy of "
                "the rootfs; each runtime's `--root` on a tmpfs owned by the user that is also its "
                "`$XDG_RUNTIME_DIR` (as /run/user/UID is)",
    "lifecycle": "`create`, `state` (pid), `start`, wait for the pid to exit, `delete`, from one bash helper (its ~1-2 ms of bash is included for every runtime)",
    "create": "`create --bundle B ID` (prepare: delete the previous one)",
    "start": "`start ID` of a created /bin/true container (prepare: create)",
    "state": "`state ID` of a running `sleep` container",
    "kill": "`kill ID KILL` of a running `sleep` container (prepare: create+start)",
    "delete": "`delete ID` of a stopped container (prepare: create+start+wait for exit)",
    "exec": "`exec ID /bin/true` into a running `sleep` container",
    "par": "whole batch of N concurrent `run -d` of `sleep` containers, each its own cgroup (prepare: delete all, then 0.5 s so the kernel's deferred teardown of the deleted namespaces and cgroups is not timed); the runs are taken in rounds with the runtimes interleaved, so a slow spell of the host falls on all of them",
}


# The repo this report is written into: paths under it are shown relative to it, never as an
# absolute path of the machine that produced the report.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shown_path(p):
    """`p` relative to the repo when it lies inside it (target/.../rrun), else as given."""
    try:
        rel = os.path.relpath(os.path.realpath(p), os.path.realpath(REPO))
    except ValueError:
        return p
    return p if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def fmt_ms(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def quantile(xs, q):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def md_table(header, rows, left=(0, 1)):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i in left else "--:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    out, results_md, chart = sys.argv[1:]
    meta = {k: v for k, v in (r[:2] for r in read_tsv(os.path.join(out, "meta.tsv")) if len(r) >= 2)}
    baseline = meta.get("baseline", "crun")
    runtimes = read_tsv(os.path.join(out, "runtimes.tsv"))
    active = [r[0] for r in runtimes if len(r) > 2 and r[2] == "ok"]
    scen_rows = read_tsv(os.path.join(out, "scenarios.tsv"))
    scenarios = [(r[0], r[1]) for r in scen_rows]
    short = {r[0]: (r[2] if len(r) > 2 else r[0]) for r in scen_rows}
    failures = read_tsv(os.path.join(out, "failures.tsv"))
    failed = {(f[0], f[1]): (f[2] if len(f) > 2 else "failed") for f in failures if len(f) >= 2}
    # The error a failure was recorded with, when there is one (4th column).
    failed_why = {(f[0], f[1]): f[3] for f in failures if len(f) > 3 and f[3]}

    # stats[scn][rt] = dict(times=[ms], mean, stddev, median, min, max)
    stats = {}
    for key, _label in scenarios:
        path = os.path.join(out, f"{key}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        for res in data.get("results", []):
            times = [t * 1000 for t in res.get("times", [])]
            if not times:
                continue
            stats.setdefault(key, {})[res["command"]] = {
                "times": times,
                "mean": res["mean"] * 1000,
                "stddev": (res.get("stddev") or 0) * 1000,
                "median": res["median"] * 1000,
                "min": res["min"] * 1000,
                "max": res["max"] * 1000,
            }

    if os.path.exists(chart):
        os.remove(chart)
    if stats:
        make_chart(out, chart, [(k, short[k]) for k, _ in scenarios], stats, active, failed)

    lines = []
    lines.append("# rrun benchmark results\n")
    if meta.get("quick") == "1":
        lines.append("**BENCH_QUICK=1 run: too few samples to mean much.**\n")
    lines.append(
        f"Generated by `make bench` (`bench/run.sh`) on {meta.get('date', '?')}; "
        f"the whole benchmark took {meta.get('elapsed', '?')} s.\n"
    )
    lines.append(
        f"Host: {meta.get('os', '?')}, kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} × {meta.get('cpu', '?')}; "
        f"cgroups {meta.get('cgroups', '?')}. {meta.get('hyperfine', 'hyperfine')} `-N` (no shell); "
        f"{meta.get('runs', '')}.\n"
    )
    load = meta.get("load", "")
    busy = ""
    try:
        start_1min = float(load.split(",")[0].split()[1])
        if start_1min > 0.5 * float(meta.get("cpus", "1")):
            busy = " **The host was not idle when the run started; absolute numbers are noisy, compare ratios.**"
    except (ValueError, IndexError):
        pass
    lines.append(f"Load average (1/5/15 min) at {load}.{busy}\n")
    lines.append("## Runtimes\n")
    lines.append(md_table(["runtime", "binary", "status / version"],
                          [[r[0], f"`{shown_path(r[1])}`", (r[3] if r[2] == "ok" else f"**skipped**: {r[3].replace(r[1], shown_path(r[1]))}")] for r in runtimes if len(r) >= 4], left=(0, 1, 2)))
    lines.append("")

    lines.append(f"## Latency (ms, lower is better; ratios are to {baseline})\n")
    rows = []
    for key, label in scenarios:
        base = stats.get(key, {}).get(baseline)
        for rt in active:
            s = stats.get(key, {}).get(rt)
            if s is None:
                why = failed.get((key, rt), "not run").upper()
                if (key, rt) in failed_why:
                    why += ": " + failed_why[(key, rt)].replace("|", "\\|")
                rows.append([label, rt, why, "", "", "", "", "", ""])
                continue
            rows.append([
                label, rt,
                f"{fmt_ms(s['mean'])} ± {fmt_ms(s['stddev'])}",
                fmt_ms(s["median"]), fmt_ms(s["min"]), fmt_ms(s["max"]), len(s["times"]),
                ratio(s["mean"], base["mean"] if base else None),
                ratio(s["min"], base["min"] if base else None),
            ])
    lat_table = md_table(["scenario", "runtime", "mean ± σ", "median", "min", "max", "runs",
                          f"mean / {baseline}", f"min / {baseline}"], rows)
    lines.append(lat_table)
    lines.append("")
    if os.path.exists(chart):
        rel = os.path.relpath(chart, os.path.dirname(os.path.abspath(results_md)))
        lines.append(f"![latency per scenario and runtime]({rel})\n")
        lines.append("Chart: box = 25th–75th percentile, bar = median, whiskers = min–max, log scale.\n")

    rss = read_tsv(os.path.join(out, "rss.tsv"))
    rss_table = ""
    if rss:
        vals = {}
        for r in rss:
            samples = [int(x) for x in (r[2].split(",") if len(r) > 2 and r[2] else []) if x.strip().isdigit()]
            vals[(r[0], r[1])] = samples
        rows = []
        for op in ("create", "run"):
            base = vals.get((baseline, op))
            bmed = statistics.median(base) if base else None
            for rt in active:
                s = vals.get((rt, op))
                if not s:
                    rows.append([op, rt, "FAILED", "", ""])
                    continue
                med = statistics.median(s)
                rows.append([op, rt, f"{med:,.0f}", f"{max(s):,}", ratio(med, bmed)])
        rss_table = md_table(["command", "runtime", "peak RSS KiB (median)", "max", f"/ {baseline}"], rows)
        lines.append("## Peak RSS\n")
        lines.append("`/usr/bin/time -f %M` of the runtime command (largest RSS among it and the children it waited for).\n")
        lines.append(rss_table)
        lines.append("")

    size = read_tsv(os.path.join(out, "size.tsv"))
    size_table = ""
    if size:
        sizes = {r[0]: int(r[2]) for r in size}
        base = sizes.get(baseline)
        rows = [[r[0], f"`{shown_path(r[1])}`", f"{int(r[2]):,}", f"{int(r[2]) / 1048576:.2f}", ratio(int(r[2]), base), r[3]] for r in size]
        size_table = md_table(["runtime", "file", "bytes", "MiB", f"/ {baseline}", "linkage"], rows, left=(0, 1, 5))
        lines.append("## Binary size\n")
        lines.append("`stat -c %s` of the binary; shared libraries of dynamic binaries are not counted.\n")
        lines.append(size_table)
        lines.append("")

    if failures:
        lines.append("## Failures\n")
        for f in failures:
            kind = "timed out" if len(f) > 2 and f[2] == "timeout" else "failed"
            why = f": {f[3]}" if len(f) > 3 and f[3] else ""
            lines.append(f"- scenario `{f[0]}`, runtime `{f[1]}` {kind}{why} (see the bench log / `bench/out/runtime-stderr.log`)")
        lines.append("")

    lines.append("## Scenarios\n")
    for key, label in scenarios:
        note = NOTES.get(key)
        if key.startswith("list"):
            note = "`list` with that many `sleep` containers running (started with `run -d`)"
        elif key.startswith("state") and key != "state":
            note = "`state ID` of one of them"
        elif key == "par":
            note = NOTES["par"].replace("N ", "")
        elif key == "rootless":
            user = meta.get("rootless")
            note = note.format(user=user.split(", ", 1)[1] if user and ", " in user else "uid unknown: not set up")
        lines.append(f"- **{label}**: {note or ''}")
    lines.append("")
    lines.append(
        "Every runtime runs inside one private mount namespace (hybrid cgroup hosts get their cgroup2 mount "
        "hidden by a tmpfs there, since crun 1.8.1 refuses hybrid mode), under a child-subreaper that reaps "
        "detached container inits at once, with a private `--root` on a tmpfs (as `/run` is on real hosts) and cgroupsPath `/rrun-bench/<runtime>-<n>`; "
        "prepare/cleanup steps are untimed. Bundle: `bundles/busybox` rootfs, read-only, `process.args` "
        "`/bin/true` or `sleep 1000`."
        + (" The rootless scenario differs as described above: its own user, bundle, rootfs copy and `--root`, no cgroup."
           if any(k == "rootless" for k, _ in scenarios) else "")
        + "\n"
    )

    os.makedirs(os.path.dirname(os.path.abspath(results_md)), exist_ok=True)
    with open(results_md, "w") as f:
        f.write("\n".join(lines))

    print()
    print(f"Latency (ms); ratios to {baseline}")
    print(lat_table)
    if rss_table:
        print("\nPeak RSS (KiB)")
        print(rss_table)
    if size_table:
        print("\nBinary size")
        print(size_table)
    print()
    return 0


def make_chart(out, chart, scenarios, stats, active, failed=()):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("report: gnuplot not found, no chart", file=sys.stderr)
        return
    keys = [(k, l) for k, l in scenarios if k in stats]
    n = len(active)
    width = 0.8 / max(n, 1)
    datafiles = []
    extra = iter(EXTRA_COLORS)
    plots = []
    for i, rt in enumerate(active):
        path = os.path.join(out, f"latency.{rt}.dat")
        with open(path, "w") as f:
            f.write("# x min q1 median q3 max mean (ms)\n")
            for xi, (k, _l) in enumerate(keys):
                s = stats[k].get(rt)
                if not s:
                    continue
                t = s["times"]
                x = xi + (i - (n - 1) / 2) * width
                f.write(f"{x:.4f} {min(t):.4f} {quantile(t, .25):.4f} {quantile(t, .5):.4f} "
                        f"{quantile(t, .75):.4f} {max(t):.4f} {s['mean']:.4f}\n")
        datafiles.append(path)
        color = COLORS.get(rt) or next(extra, "#666666")
        plots.append(f"'{path}' using 1:3:2:6:5 with candlesticks whiskerbars 0.5 "
                     f"lc rgb '{color}' lw 1.2 fs solid 0.35 border title '{rt}'")
        plots.append(f"'{path}' using 1:4:4:4:4 with candlesticks lc rgb '{color}' lw 2.5 notitle")
    labels = []
    for xi, (k, _l) in enumerate(keys):
        for i, rt in enumerate(active):
            if rt not in stats[k]:
                x = xi + (i - (n - 1) / 2) * width
                what = failed.get((k, rt), "n/a")
                color = COLORS.get(rt, "#666666")
                labels.append(f"set label '{rt} {what}' at {x:.4f}, graph 0.03 left rotate by 90 "
                              f"textcolor rgb '{color}' font ',9'")
    xtics = ", ".join(f"\"{l.replace(chr(34), '')}\" {i}" for i, (_k, l) in enumerate(keys))
    terminal = "pngcairo size 1500,760 font 'sans,11'"
    try:
        probe = subprocess.run([gnuplot, "-e", "set terminal pngcairo"], capture_output=True, text=True)
        if probe.returncode != 0 or "unknown" in probe.stderr.lower():
            terminal = "png size 1500,760"
    except OSError:
        terminal = "png size 1500,760"
    script = f"""
set terminal {terminal}
set termoption noenhanced
set output '{chart}'
set title 'OCI runtime latency per scenario (hyperfine -N; box 25–75%, bar median, whiskers min–max)'
set ylabel 'milliseconds (log scale)'
set logscale y
set format y '%g'
set grid ytics mytics lc rgb '#dddddd'
set xrange [-0.6:{len(keys) - 0.4}]
set xtics ({xtics}) rotate by -20 left nomirror
set key top left
set boxwidth {width * 0.85:.3f} absolute
set bmargin 5
{chr(10).join(labels)}
plot {", ".join(plots)}
"""
    gp = os.path.join(out, "latency.gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run([gnuplot, gp], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"report: gnuplot failed:\n{r.stderr}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
