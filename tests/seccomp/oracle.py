#!/usr/bin/python3
"""make test-seccomp: rrun's seccomp compiler against libseccomp, in a BPF interpreter of our own.

For each profile (containers-common's, and random ones from a fixed seed) the program rrun
compiles (`rrun debug seccomp --raw`) and the one libseccomp builds from the same rules, the way
runc hands them to it (Debian's python3-seccomp: SyscallFilter, add_arch, add_rule,
export_bpf), are run in the classic BPF interpreter below over every arch, syscall number and
arguments around every constant of the rules. Every verdict must be the same except for the
deviations listed in DEVIATIONS, each recognised by name; any other difference fails, and so
does a listed deviation that no longer occurs where it is expected (containers-common).

Environment: RRUN_BIN (the rrun binary), ORACLE_PROFILES (random profiles, default 60),
ORACLE_SEED. Prints "N passed, M failed" (a profile is a test).
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

try:
    import seccomp as S
except ImportError:
    sys.exit("python3-seccomp is missing (scripts/apt.sh: apt_install python3-seccomp)")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RRUN = os.environ.get("RRUN_BIN") or os.path.join(REPO, "target/x86_64-unknown-linux-gnu/release/rrun")

AUDIT_X86_64 = 0xC000003E
AUDIT_I386 = 0x40000003
AUDIT_AARCH64 = 0xC00000B7
X32_BIT = 0x40000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
RET_LOG = 0x7FFC0000
RET_TRACE = 0x7FF00000
RET_TRAP = 0x00030000
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_NOTIFY = 0x7FC00000
ENOSYS = 38
EPERM = 1
M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1

# Where rrun and libseccomp (as runc drives it) differ on purpose, or where libseccomp 2.5 is
# wrong. Each is recognised by a function of the point and both verdicts.
DEVIATIONS = {
    "enosys-stub": "runc's stub (rrun has it built in; libseccomp alone has not): numbers above "
    "the highest one the profile names for an arch get ENOSYS, not the default action",
    "most-restrictive-wins": "several rules match one call: rrun takes the most restrictive "
    "action (the kernel's order), libseccomp the first unconditional rule",
    "i386-multiplexed-args": "i386 socketcall/ipc: libseccomp copies argument conditions onto "
    "the multiplexer's raw arguments (pointers); rrun covers unconditional rules only",
    "newer-than-libseccomp": "the profile names syscalls libseccomp 2.5 has no number for "
    "(rrun's table follows Linux 6.19; i386's direct socket calls): their rules, and runc's "
    "stub above them, exist in rrun's program only",
    "libseccomp-64bit-compare": "libseccomp 2.5 gets 64-bit GT/GE/LT/LE wrong when the high "
    "halves differ; rrun matches the 64-bit reference",
}


# ----------------------------------------------------------------------------- BPF interpreter
def parse_prog(raw):
    return [struct.unpack("<HBBI", raw[i:i + 8]) for i in range(0, len(raw), 8)]


def run_bpf(prog, arch, nr, args):
    data = struct.pack("<iIQ6Q", nr if nr < 0x80000000 else nr - (1 << 32), arch, 0,
                       *[a & M64 for a in args])
    A = X = 0
    mem = [0] * 16
    pc = 0
    n = len(prog)
    while pc < n:
        code, jt, jf, k = prog[pc]
        cls = code & 0x07
        pc += 1
        if cls == 0x00:  # LD
            mode, size = code & 0xE0, code & 0x18
            if mode == 0x20 and size == 0x00:
                A = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:
                A = k
            elif mode == 0x60:
                A = mem[k]
            elif mode == 0x80:
                A = len(data)
            else:
                raise ValueError(f"ld {code:#x}")
        elif cls == 0x01:  # LDX
            X = k if code & 0xE0 == 0x00 else mem[k] if code & 0xE0 == 0x60 else len(data)
        elif cls == 0x02:
            mem[k] = A
        elif cls == 0x03:
            mem[k] = X
        elif cls == 0x04:  # ALU
            op, src = code & 0xF0, (X if code & 0x08 else k)
            A = {0x00: lambda: A + src, 0x10: lambda: A - src, 0x20: lambda: A * src,
                 0x30: lambda: A // src, 0x40: lambda: A | src, 0x50: lambda: A & src,
                 0x60: lambda: A << src, 0x70: lambda: A >> src, 0x80: lambda: -A,
                 0x90: lambda: A % src, 0xA0: lambda: A ^ src}[op]() & M32
        elif cls == 0x05:  # JMP
            op, src = code & 0xF0, (X if code & 0x08 else k)
            if op == 0x00:
                pc += k
                continue
            cond = {0x10: A == src, 0x20: A > src, 0x30: A >= src, 0x40: (A & src) != 0}[op]
            pc += jt if cond else jf
        elif cls == 0x06:  # RET
            return A if code & 0x18 == 0x10 else k
        elif cls == 0x07:
            if code & 0xF8 == 0x00:
                X = A
            else:
                A = X
    raise ValueError("fell off the end")


# ----------------------------------------------------------------------------- the two builders
def rrun_prog(profile, tmp):
    spec = {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}, "linux": {"seccomp": profile}}
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(spec, f)
    r = subprocess.run([RRUN, "debug", "seccomp", "--bundle", tmp, "--raw"], capture_output=True)
    if r.returncode != 0:
        return None, r.stderr.decode(errors="replace").strip()
    return parse_prog(r.stdout), None


def act(name, errno_ret):
    return {
        "SCMP_ACT_ALLOW": lambda: S.ALLOW,
        "SCMP_ACT_ERRNO": lambda: S.ERRNO(EPERM if errno_ret is None else errno_ret),
        "SCMP_ACT_KILL": lambda: S.KILL,
        "SCMP_ACT_KILL_THREAD": lambda: S.KILL,
        "SCMP_ACT_KILL_PROCESS": lambda: S.KILL_PROCESS,
        "SCMP_ACT_TRAP": lambda: S.TRAP,
        "SCMP_ACT_LOG": lambda: S.LOG,
        "SCMP_ACT_TRACE": lambda: S.TRACE(EPERM if errno_ret is None else errno_ret),
    }[name]()


OPS = {"SCMP_CMP_NE": S.NE, "SCMP_CMP_LT": S.LT, "SCMP_CMP_LE": S.LE, "SCMP_CMP_EQ": S.EQ,
       "SCMP_CMP_GE": S.GE, "SCMP_CMP_GT": S.GT, "SCMP_CMP_MASKED_EQ": S.MASKED_EQ}
ARCHES = {"SCMP_ARCH_X86": S.Arch.X86, "SCMP_ARCH_X32": S.Arch.X32}


def lib_prog(profile, tmp):
    f = S.SyscallFilter(act(profile["defaultAction"], profile.get("defaultErrnoRet")))
    f.set_attr(S.Attr.ACT_BADARCH, S.KILL_PROCESS)
    for a in (profile.get("architectures") or []):
        if a in ARCHES:
            f.add_arch(ARCHES[a])
    for rule in (profile.get("syscalls") or []):
        action = act(rule["action"], rule.get("errnoRet"))
        args = [S.Arg(c["index"], OPS[c["op"]], c["value"], c.get("valueTwo", 0))
                for c in (rule.get("args") or [])]
        idx = [a["index"] for a in (rule.get("args") or [])]
        # runc: conditions on one argument twice become rules of their own (ORed).
        sets = [[a] for a in args] if len(idx) != len(set(idx)) else [args]
        for name in rule.get("names") or []:
            for conds in sets:
                try:
                    f.add_rule(action, name, *conds)
                except (RuntimeError, ValueError, OSError):
                    pass  # unknown to libseccomp, or the default action: runc skips them too
    path = os.path.join(tmp, "lib.bpf")
    with open(path, "wb") as out:
        f.export_bpf(out)
    with open(path, "rb") as i:
        return parse_prog(i.read())


# ----------------------------------------------------------------------------- the 64-bit reference
def ref_cond(c, arg, bits):
    m = M32 if bits == 32 else M64
    v, a = c["value"] & m, arg & m
    op = c["op"]
    if op == "SCMP_CMP_MASKED_EQ":
        return (a & v) == (c.get("valueTwo", 0) & v)
    return {"SCMP_CMP_NE": a != v, "SCMP_CMP_LT": a < v, "SCMP_CMP_LE": a <= v,
            "SCMP_CMP_EQ": a == v, "SCMP_CMP_GE": a >= v, "SCMP_CMP_GT": a > v}[op]


# ----------------------------------------------------------------------------- sampling
def syscall_numbers():
    out = [(AUDIT_X86_64, n) for n in range(0, 470)]
    out += [(AUDIT_X86_64, X32_BIT | n) for n in list(range(0, 470)) + list(range(512, 548))]
    out += [(AUDIT_I386, n) for n in range(0, 470)]
    out += [(AUDIT_AARCH64, n) for n in (0, 63, 64)]
    out += [(AUDIT_X86_64, M32), (AUDIT_I386, M32)]
    return out


def arg_samples(profile):
    vals = {0, 1, M32, M32 + 1, M64}
    for r in (profile.get("syscalls") or []):
        for c in (r.get("args") or []):
            for v in (c["value"], c.get("valueTwo", 0)):
                for d in (v - 1, v, v + 1, v | (1 << 32), v & M32, (v + (1 << 32))):
                    vals.add(d & M64)
    return sorted(vals)


def classify(point, r, l, profile, ref):
    """Which listed deviation a difference between rrun (r) and libseccomp (l) is, where rrun
    follows the reference; None if none is."""
    arch, nr, args = point
    if arch == AUDIT_I386 and nr in (102, 117):
        return "i386-multiplexed-args"
    if ref is None or r != ref:
        return None
    a = arch_of(point)
    if a is not None and any(lib_nr(a[0], n) is None and nr_of(a[0], n) is not None
                             for rl in profile.get("syscalls") or [] for n in rl.get("names") or []):
        return "newer-than-libseccomp"
    if r == RET_ERRNO | ENOSYS and l == ret_of(profile["defaultAction"],
                                               profile.get("defaultErrnoRet")):
        return "enosys-stub"
    if sev(r) < sev(l):
        return "most-restrictive-wins"
    if any(c["op"] in ("SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_LT", "SCMP_CMP_LE")
           for rl in profile.get("syscalls") or [] for c in rl.get("args") or []):
        return "libseccomp-64bit-compare"
    return None


def compare(profile, label, tmp, rng):
    rp, err = rrun_prog(profile, tmp)
    if rp is None:
        return {"refused": err}, []
    lp = lib_prog(profile, tmp)
    seen, bad = {}, []
    argvals = arg_samples(profile)
    ruled = set()
    for rule in (profile.get("syscalls") or []):
        if rule.get("args"):
            for n in rule.get("names") or []:
                ruled.add(n)
    ruled_nrs = set()
    for n in ruled:
        try:
            ruled_nrs.add(S.resolve_syscall(S.Arch.X86_64, n))
        except Exception:
            pass
        try:
            ruled_nrs.add(S.resolve_syscall(S.Arch.X86, n))
        except Exception:
            pass
    points = []
    for arch, nr in syscall_numbers():
        points.append((arch, nr, [0] * 6))
        if (nr & ~X32_BIT) in ruled_nrs:
            for i in range(6):
                for v in argvals:
                    a = [0] * 6
                    a[i] = v
                    points.append((arch, nr, a))
            for _ in range(20):
                points.append((arch, nr, [rng.choice(argvals) for _ in range(6)]))
    for p in points:
        r = run_bpf(rp, *p)
        l = run_bpf(lp, *p)
        ref = reference(profile, p)
        if ref is not None and r != ref:
            bad.append(f"{label}: arch {p[0]:#x} nr {p[1]:#x} args {[hex(a) for a in p[2]]}: "
                       f"rrun {r:#010x} but the profile says {ref:#010x} (libseccomp {l:#010x})")
            continue
        if r == l:
            continue
        why = classify(p, r, l, profile, ref)
        if why is None:
            bad.append(f"{label}: arch {p[0]:#x} nr {p[1]:#x} args {[hex(a) for a in p[2]]}: "
                       f"rrun {r:#010x}, libseccomp {l:#010x}, reference {ref}")
        else:
            seen[why] = seen.get(why, 0) + 1
    return seen, bad


ORDER = [RET_KILL_PROCESS, RET_KILL_THREAD, RET_TRAP, RET_ERRNO, RET_NOTIFY, RET_TRACE,
         RET_LOG, RET_ALLOW]


def sev(x):
    a = x & 0xFFFF0000
    return ORDER.index(a) if a in ORDER else 99


def arch_of(point):
    """(libseccomp arch, the nr it knows, argument bits, profile arch name) or None."""
    arch, nr, _ = point
    if arch == AUDIT_X86_64 and nr & X32_BIT and nr != M32:
        return (S.Arch.X32, nr, 32, "SCMP_ARCH_X32")
    if arch == AUDIT_X86_64:
        return (S.Arch.X86_64, nr, 64, "SCMP_ARCH_X86_64")
    if arch == AUDIT_I386:
        return (S.Arch.X86, nr, 32, "SCMP_ARCH_X86")
    return None


_NAMES = {}


def rrun_tables():
    """rrun's own tables (src/seccomp/tables.rs), used only for names libseccomp 2.5 has no
    number for: syscalls newer than it, and i386's direct socket calls (it multiplexes them)."""
    import re
    text = open(os.path.join(REPO, "src/seccomp/tables.rs")).read()
    out = {}
    for name in ("X86_64", "I386"):
        body = text[text.index(f"const {name}: "):]
        body = body[:body.index("];")]
        out[name] = {m.group(1): int(m.group(2)) for m in re.finditer(r'\("(\w+)", (\d+)\)', body)}
    return out


TABLES = rrun_tables()


def lib_nr(a, name):
    try:
        n = S.resolve_syscall(a, name)
    except Exception:
        return None
    return n if n >= 0 else None


def nr_of(a, name):
    key = (a, name)
    if key not in _NAMES:
        n = lib_nr(a, name)
        if a == S.Arch.X86 and n in (102, 117) and name not in ("socketcall", "ipc"):
            # libseccomp names the multiplexer; the direct call has a number of its own.
            n = TABLES["I386"].get(name)
        if n is None:
            if a == S.Arch.X86:
                n = TABLES["I386"].get(name)
            elif a == S.Arch.X86_64:
                n = TABLES["X86_64"].get(name)
        _NAMES[key] = n
    return _NAMES[key]


def knows(a, nr):
    try:
        S.resolve_syscall(a, nr)
        return True
    except Exception:
        return False


def reference(profile, point):
    """The verdict by the profile's documented semantics (seccomp/mod.rs): the most
    restrictive rule of the syscall whose conditions all hold (ANDed; ORed where two test one
    argument), else ENOSYS above the highest number the profile names for that arch when the
    default is not ALLOW/LOG/TRACE (runc's stub), else the default; an arch not listed gets
    KILL_PROCESS. None where the model does not decide (i386 socketcall/ipc, syscall -1, a
    number libseccomp has no name for)."""
    arch, nr, args = point
    a = arch_of(point)
    listed = set(profile.get("architectures") or []) | {"SCMP_ARCH_X86_64"}
    if a is None or a[3] not in listed:
        return RET_KILL_PROCESS if nr != M32 else None
    la, nr, bits, _ = a
    if la == S.Arch.X86 and nr in (102, 117):
        return None
    if nr == M32:
        # syscall(-1): no syscall's number; what any number above the profile's gets.
        d = profile["defaultAction"]
        if d in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"):
            return ret_of(d, profile.get("defaultErrnoRet"))
        return RET_ERRNO | ENOSYS
    # x32: names with an x32 number of their own (512 and up) or none are left to libseccomp
    # alone (the model only knows x86_64's numbers with the x32 bit).
    if la == S.Arch.X32 and any(lib_nr(la, n) is None for r in profile.get("syscalls") or []
                                for n in r.get("names") or [] if n in TABLES["X86_64"]):
        return None
    hits = []
    top = -1
    for rule in profile.get("syscalls") or []:
        nrs = [nr_of(la, n) for n in rule.get("names") or []]
        top = max([top] + [x for x in nrs if x is not None])
        if nr not in nrs:
            continue
        conds = rule.get("args") or []
        idx = [c["index"] for c in conds]
        groups = [[c] for c in conds] if len(idx) != len(set(idx)) else [conds]
        if not groups or any(all(ref_cond(c, args[c["index"]], bits) for c in g) for g in groups):
            hits.append(ret_of(rule["action"], rule.get("errnoRet")))
    if hits:
        return min(hits, key=sev)
    default = profile["defaultAction"]
    if default not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE") and nr > top:
        return RET_ERRNO | ENOSYS
    return ret_of(default, profile.get("defaultErrnoRet"))


def ret_of(action, errno_ret):
    e = EPERM if errno_ret is None else errno_ret
    return {"SCMP_ACT_ALLOW": RET_ALLOW, "SCMP_ACT_ERRNO": RET_ERRNO | e,
            "SCMP_ACT_KILL": RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": RET_KILL_THREAD,
            "SCMP_ACT_KILL_PROCESS": RET_KILL_PROCESS, "SCMP_ACT_TRAP": RET_TRAP,
            "SCMP_ACT_LOG": RET_LOG, "SCMP_ACT_TRACE": RET_TRACE | e}[action]


# ----------------------------------------------------------------------------- random profiles
POOL = ["read", "write", "openat", "close", "personality", "clone", "socket", "ioctl", "mmap",
        "setns", "unshare", "chmod", "fchmodat", "kill", "prctl", "mount", "bpf", "ptrace",
        "futex", "getpid", "uname", "setsockopt", "socketcall", "keyctl", "not_a_syscall"]
ACTIONS = ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG",
           "SCMP_ACT_TRAP", "SCMP_ACT_KILL_THREAD"]
CONSTS = [0, 1, 2, 8, 0x7FFFFFFF, 0xFFFFFFFF, 0x100000000, 0x1FFFFFFFF, 0x7E020000,
          0x8000000000000000, M64]


def random_profile(rng):
    arches = ["SCMP_ARCH_X86_64"] + [a for a in ("SCMP_ARCH_X86", "SCMP_ARCH_X32")
                                     if rng.random() < 0.4]
    wide_ok = len(arches) == 1
    rules = []
    for _ in range(rng.randint(1, 10)):
        rule = {"names": rng.sample(POOL, rng.randint(1, 3)), "action": rng.choice(ACTIONS)}
        if rule["action"] == "SCMP_ACT_ERRNO" and rng.random() < 0.5:
            rule["errnoRet"] = rng.choice([1, 13, 38])
        if rng.random() < 0.6:
            conds = []
            for _ in range(rng.randint(1, 3)):
                v = rng.choice(CONSTS if wide_ok else [c for c in CONSTS if c <= M32])
                op = rng.choice(list(OPS))
                c = {"index": rng.randint(0, 2), "value": v, "op": op}
                if op == "SCMP_CMP_MASKED_EQ":
                    c["valueTwo"] = v & rng.choice([0, 1, M32, v])
                conds.append(c)
            rule["args"] = conds
        rules.append(rule)
    return {"defaultAction": rng.choice(ACTIONS), "architectures": arches, "syscalls": rules}


def main():
    seed = int(os.environ.get("ORACLE_SEED", "20261207"))
    n = int(os.environ.get("ORACLE_PROFILES", "60"))
    rng = random.Random(seed)
    with open(os.path.join(REPO, "tests/fixtures/seccomp/containers-common.json")) as f:
        common = json.load(f)
    profiles = [("containers-common", common)]
    profiles += [(f"random-{i}", random_profile(rng)) for i in range(n)]
    passed = failed = 0
    totals = {}
    with tempfile.TemporaryDirectory(prefix="rrun-oracle.") as tmp:
        for label, prof in profiles:
            seen, bad = compare(prof, label, tmp, rng)
            if "refused" in seen:
                # Only the refusal rrun documents: a value wider than the 32-bit arguments of
                # a listed 32-bit arch (libseccomp refuses such a rule too).
                if "does not fit the 32-bit arguments" in seen["refused"]:
                    passed += 1
                    print(f"PASS {label}: refused as libseccomp would: {seen['refused']}")
                else:
                    failed += 1
                    print(f"FAIL {label}: rrun refuses it: {seen['refused']}")
                continue
            for k, v in seen.items():
                totals[k] = totals.get(k, 0) + v
            if label == "containers-common":
                # setns: allowed by name, denied without CAP_SYS_ADMIN (see seccomp/mod.rs).
                if "most-restrictive-wins" not in seen:
                    bad.append("containers-common: the documented setns deviation is gone")
            if bad:
                failed += 1
                print(f"FAIL {label}: {len(bad)} unexplained differences")
                for b in bad[:10]:
                    print("  " + b)
            else:
                passed += 1
                print(f"PASS {label}: deviations {seen or 'none'}")
    print("deviations seen: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    unknown = set(totals) - set(DEVIATIONS)
    if unknown:
        print(f"unlisted deviation classes: {unknown}")
        failed += 1
    # Each listed deviation is asserted by name: the default sample shows every one of them
    # (newer-than-libseccomp only with a profile naming such syscalls).
    if n >= 60:
        for name in sorted(set(DEVIATIONS) - {"newer-than-libseccomp"} - set(totals)):
            print(f"FAIL the listed deviation {name} no longer occurs: {DEVIATIONS[name]}")
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
