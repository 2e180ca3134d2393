#!/usr/bin/env python3
"""hoststate.py snapshot FILE | restore FILE

What the engines change on the host outside their private directories:
iptables/ip6tables rules and chains, bridges, netns mounts in /run/netns,
sysctls, and a few fixed paths (lock files, /run dirs, caches) that they
create no matter which root they are given. `snapshot` records them before the
daemons start; `restore` removes exactly what appeared since (only things an
engine makes: rules and chains naming DOCKER/NETAVARK/CNI or our bridges,
bridges with the engines' names, nsfs mounts, the listed paths) and prints
each removal. Anything else that changed is printed as a warning, never
touched.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

# Paths the engines create outside their roots (recorded; removed if new).
PATHS = [
    "/run/containerd/s",
    "/run/containerd/runc",
    "/run/containerd/fifo",
    "/run/containerd",
    "/run/containers/networks",
    "/run/containers",
    "/run/docker/plugins",
    "/run/docker",
    "/run/xtables.lock",
    "/run/netns",
    "/var/lib/containers/cache",
    "/var/lib/containers",
    "/etc/docker/key.json",
    "/etc/docker",
]
# Of those, the dirs that only hold the engines' own state (shim sockets, the
# netavark IPAM db, the image blob-info cache): removed whole when they are new.
TREES = {
    "/run/containerd/s",
    "/run/containerd/runc",
    "/run/containerd/fifo",
    "/run/containers/networks",
    "/var/lib/containers/cache",
}
SYSCTLS = [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
]
BRIDGE_RE = re.compile(r"^(docker0|podman\d+|cni-podman\d+|br-[0-9a-f]{12}|rrcl-[a-z0-9-]+)$")
RULE_RE = re.compile(r"DOCKER|NETAVARK|CNI-|netavark|docker0|podman|br-[0-9a-f]{12}|rrcl-")
TOOLS = [("iptables", "iptables-save"), ("ip6tables", "ip6tables-save")]


def sh(args):
    return subprocess.run(args, capture_output=True, text=True)


def tables(save_cmd):
    """{table: {"chains": [...], "rules": [...]}} from iptables-save."""
    if not shutil.which(save_cmd):
        return {}
    out = sh([save_cmd]).stdout
    res, cur = {}, None
    for line in out.splitlines():
        if line.startswith("*"):
            cur = line[1:]
            res[cur] = {"chains": [], "rules": []}
        elif cur and line.startswith(":"):
            res[cur]["chains"].append(line[1:].split()[0])
        elif cur and line.startswith("-A "):
            res[cur]["rules"].append(line)
    return res


def bridges():
    out = sh(["ip", "-o", "link", "show", "type", "bridge"]).stdout
    return sorted(l.split(":")[1].strip().split("@")[0] for l in out.splitlines() if ":" in l)


def nsfs_mounts():
    res = []
    with open("/proc/self/mountinfo") as f:
        for l in f:
            p = l.split()
            fstype = p[p.index("-") + 1]
            if fstype == "nsfs" and p[4].startswith("/run/netns/"):
                res.append(p[4])
    return sorted(res)


def netns_files():
    try:
        return sorted(os.listdir("/run/netns"))
    except OSError:
        return []


def read(p):
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return None


def snapshot():
    return {
        "tables": {tool: tables(save) for tool, save in TOOLS},
        "bridges": bridges(),
        "nsfs": nsfs_mounts(),
        "netns": netns_files(),
        "paths": {p: os.path.lexists(p) for p in PATHS},
        "sysctl": {p: read(p) for p in SYSCTLS},
    }


def restore(before):
    now = snapshot()
    did, warn = [], []
    # iptables: delete new rules (newest first), then flush and delete new chains.
    for tool, _ in TOOLS:
        bt, nt = before["tables"].get(tool, {}), now["tables"].get(tool, {})
        for table, cur in nt.items():
            old = bt.get(table, {"chains": [], "rules": []})
            left = list(old["rules"])
            new_rules = []
            for r in cur["rules"]:
                if r in left:
                    left.remove(r)
                else:
                    new_rules.append(r)
            for r in reversed(new_rules):
                if not RULE_RE.search(r):
                    warn.append(f"{tool} -t {table}: new rule not ours, left: {r}")
                    continue
                res = sh([tool, "-w", "-t", table, "-D"] + shlex.split(r)[1:])
                (did if res.returncode == 0 else warn).append(
                    f"{tool} -t {table} -D {r[3:]}" + ("" if res.returncode == 0 else f": {res.stderr.strip()}"))
            for c in cur["chains"]:
                if c in old["chains"]:
                    continue
                if not RULE_RE.search(c):
                    warn.append(f"{tool} -t {table}: new chain not ours, left: {c}")
                    continue
                sh([tool, "-w", "-t", table, "-F", c])
                res = sh([tool, "-w", "-t", table, "-X", c])
                (did if res.returncode == 0 else warn).append(
                    f"{tool} -t {table} -X {c}" + ("" if res.returncode == 0 else f": {res.stderr.strip()}"))
    for b in now["bridges"]:
        if b in before["bridges"]:
            continue
        if BRIDGE_RE.match(b):
            res = sh(["ip", "link", "del", b])
            (did if res.returncode == 0 else warn).append(f"ip link del {b}")
        else:
            warn.append(f"new bridge not ours, left: {b}")
    for m in now["nsfs"]:
        if m not in before["nsfs"]:
            res = sh(["umount", m])
            (did if res.returncode == 0 else warn).append(f"umount {m}")
    for n in netns_files():
        if n not in before["netns"]:
            try:
                os.unlink(os.path.join("/run/netns", n))
                did.append(f"rm /run/netns/{n}")
            except OSError as e:
                warn.append(f"rm /run/netns/{n}: {e}")
    for p, val in before["sysctl"].items():
        if val is not None and read(p) not in (None, val):
            try:
                with open(p, "w") as f:
                    f.write(val)
                did.append(f"sysctl {p} = {val}")
            except OSError as e:
                warn.append(f"sysctl {p}: {e}")
    # Paths: listed deepest first; a dir is removed only when the engines left it empty.
    for p in PATHS:
        if before["paths"].get(p) or not os.path.lexists(p):
            continue
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                if p in TREES:
                    # made by the engines for their state or cache alone
                    shutil.rmtree(p)
                else:
                    os.rmdir(p)
            else:
                os.unlink(p)
            did.append(f"rm {p}")
        except OSError as e:
            warn.append(f"rm {p}: {e}")
    for d in did:
        print(f"  host: {d}")
    for w in warn:
        print(f"  host: WARNING {w}")
    return 0


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "snapshot":
        with open(path, "w") as f:
            json.dump(snapshot(), f, indent=1)
    elif cmd == "restore":
        with open(path) as f:
            sys.exit(restore(json.load(f)))
    else:
        sys.exit("usage: hoststate.py snapshot|restore FILE")


if __name__ == "__main__":
    main()
