#!/usr/bin/env python3
"""tests/cri/cri.py: the kubelet's side of the CRI, for make test-cri (tests/cri/run.sh).

A CRI v1 client (gRPC on containerd's socket, messages from tests/cri/api.proto compiled into
--gen) that makes the calls a kubelet makes for a pod, and checks each one against what the
node shows: cgroup files, /proc/<pid>/ns, processes, mounts, the runtime's state dir and
command lines, CRI log files. Exec and Attach go through containerd's streaming server with
the kubelet's WebSocket protocol (v4.channel.k8s.io: one byte of channel, 0 stdin, 1 stdout,
2 stderr, 3 the final status as JSON, 4 terminal resize).

  cri.py sequence --handler rrun|runc   one pod's life, step by step, the kubelet's order
  cri.py scale                          --pods pods at once, per handler, interleaved, timed
  cri.py cleanup [--check]              stop and remove what is left (and say if anything was)

Every check prints PASS:/FAIL:; the counts go to --counts as "passed failed".
"""
import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
import uuid

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["sequence", "scale", "cleanup"])
ap.add_argument("--gen", required=True)
ap.add_argument("--sock", required=True)
ap.add_argument("--tmp", required=True)
ap.add_argument("--image", required=True)
ap.add_argument("--pause-image", required=True)
ap.add_argument("--cgroup-prefix", required=True)
ap.add_argument("--systemd", default="0")
ap.add_argument("--handler", default="rrun")
ap.add_argument("--pods", type=int, default=20)
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--counts", required=True)
ap.add_argument("--check", action="store_true")
args = ap.parse_args()

sys.path.insert(0, args.gen)
import grpc  # noqa: E402
import websocket  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import api_pb2 as pb  # noqa: E402

SYSTEMD = args.systemd == "1"
CG2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
NS = "k8s.io"
MiB = 1 << 20
POD_PIDS = 48

# ---------------------------------------------------------------------------------------------
# Reporting

LOCK = threading.Lock()
COUNTS = [0, 0]
SECTION = "cri"


def write_counts():
    with open(args.counts, "w") as f:
        f.write(f"{COUNTS[0]} {COUNTS[1]}\n")


def ok(name):
    with LOCK:
        COUNTS[0] += 1
        print(f"PASS: {SECTION}: {name}", flush=True)


def bad(name, detail=""):
    with LOCK:
        COUNTS[1] += 1
        print(f"FAIL: {SECTION}: {name}", flush=True)
        if detail:
            for line in str(detail).rstrip().splitlines()[-15:]:
                print(f"      | {line}", flush=True)


def check(name, cond, detail=""):
    if cond:
        ok(name)
    else:
        bad(name, detail)
    return bool(cond)


def eq(name, want, got):
    return check(f"{name}", want == got, f"want {want!r}, got {got!r}")


class Skip(Exception):
    """A step that cannot run because an earlier one failed (already reported)."""


@contextlib.contextmanager
def step(name):
    """A step whose success is that the block raises nothing; its failure is reported with the
    error and the block is left."""
    try:
        yield
    except Skip:
        pass
    except grpc.RpcError as e:
        bad(name, f"{e.code().name}: {e.details()}")
    except Exception as e:  # noqa: BLE001 - every error is a failed step
        bad(name, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    else:
        ok(name)


def settle(fn, timeout, interval=0.3):
    """Polls FN (a list of what is left) until it is empty or TIMEOUT passed; its last value."""
    end = time.time() + timeout
    while True:
        v = fn()
        if not v or time.time() >= end:
            return v
        time.sleep(interval)


def wait_until(fn, timeout, interval=0.2):
    end = time.time() + timeout
    while True:
        try:
            v = fn()
        except Exception:  # noqa: BLE001
            v = None
        if v:
            return v
        if time.time() >= end:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# The CRI client: every method of RuntimeService and ImageService in api.proto, called as
# cri.Name({request as a dict with the proto's field names}).


class CRI:
    def __init__(self, sock):
        self.channel = grpc.insecure_channel(
            "unix://" + sock, options=[("grpc.max_receive_message_length", 64 << 20)])
        for svc in ("RuntimeService", "ImageService"):
            for m in pb.DESCRIPTOR.services_by_name[svc].methods:
                req = getattr(pb, m.input_type.name)
                resp = getattr(pb, m.output_type.name)
                stub = self.channel.unary_unary(
                    f"/runtime.v1.{svc}/{m.name}",
                    request_serializer=req.SerializeToString,
                    response_deserializer=resp.FromString)
                setattr(self, m.name, self._call(stub, req))

    @staticmethod
    def _call(stub, req):
        def call(msg=None, timeout=120):
            return stub(json_format.ParseDict(msg or {}, req()), timeout=timeout)
        return call


cri = CRI(args.sock)

# ---------------------------------------------------------------------------------------------
# The node: cgroups, processes, mounts


def v1_mounts():
    """{controller or name=...: mountpoint} of the cgroup v1 hierarchies."""
    res = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            p = line.split()
            i = p.index("-")
            if p[i + 1] != "cgroup":
                continue
            for o in p[i + 3].split(","):
                if o in ("rw", "ro") or o.startswith("release_agent") or o in ("relatime", "noexec", "nosuid", "nodev"):
                    continue
                res[o] = p[4]
    return res


V1 = {} if CG2 else v1_mounts()


def cg_dir(ctrl, path):
    if CG2:
        return "/sys/fs/cgroup" + path
    return V1[ctrl] + path


def cg_read(ctrl, path, name):
    with open(os.path.join(cg_dir(ctrl, path), name)) as f:
        return f.read().strip()


def proc_cgroups(pid):
    """{controller: path} from /proc/PID/cgroup ('' for the v2 hierarchy)."""
    res = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in (ctrls.split(",") if ctrls else [""]):
                res[c] = path
    return res


def expand_slice(name):
    """systemd's path of a slice: a-b-c.slice -> /a.slice/a-b.slice/a-b-c.slice"""
    base = name[:-len(".slice")]
    parts = base.split("-")
    return "".join("/" + "-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))


def container_cgroup(parent, cid):
    """The cgroup path containerd asks the runtime for, for a container of a pod whose
    cgroup_parent is PARENT."""
    if SYSTEMD:
        return expand_slice(parent) + f"/cri-containerd-{cid}.scope"
    return f"{parent}/{cid}"


def ctrl_of(c):
    return "" if CG2 else c


CG_LOCK = threading.Lock()


class PodCgroup:
    """The pod's cgroup, made and removed as the kubelet does (its QoS/pod cgroup manager),
    with the pod's pids limit (the kubelet's podPidsLimit): the runtimes make the containers'
    cgroups below it."""

    def __init__(self, name):
        if SYSTEMD:
            self.parent = f"{args.cgroup_prefix}-{name.replace('-', '_')}.slice"
        else:
            self.parent = f"/{args.cgroup_prefix}/{name}"

    def create(self):
        with CG_LOCK:
            self._create()

    def _create(self):
        if SYSTEMD:
            r = subprocess.run(
                ["busctl", "call", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                 "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))",
                 self.parent, "replace", "3", "Description", "s", "rrun test-cri pod",
                 "TasksAccounting", "b", "true", "TasksMax", "t", str(POD_PIDS), "0"],
                capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"StartTransientUnit {self.parent}: {r.stderr.strip()}")
            wait_until(lambda: os.path.isdir("/sys/fs/cgroup" + expand_slice(self.parent)), 10)
            return
        prefix = "/" + args.cgroup_prefix
        if CG2:
            for d in (prefix, self.parent):
                os.makedirs("/sys/fs/cgroup" + d, exist_ok=True)
                for c in ("cpu", "cpuset", "memory", "pids", "io"):
                    try:
                        with open("/sys/fs/cgroup" + d + "/cgroup.subtree_control", "w") as f:
                            f.write("+" + c)
                    except OSError:
                        pass
            with open("/sys/fs/cgroup" + self.parent + "/pids.max", "w") as f:
                f.write(str(POD_PIDS))
            return
        seen = set()
        for ctrl, mnt in V1.items():
            if mnt in seen:
                continue
            seen.add(mnt)
            for d in (prefix, self.parent):
                full = mnt + d
                if os.path.isdir(full):
                    continue
                os.mkdir(full)
                if os.path.exists(full + "/cpuset.cpus"):
                    # as libcontainer: a new cpuset gets its parent's cpus and mems
                    up = os.path.dirname(full)
                    for fn in ("cpuset.cpus", "cpuset.mems"):
                        with open(f"{up}/{fn}") as src, open(f"{full}/{fn}", "w") as dst:
                            dst.write(src.read().strip())
        with open(V1["pids"] + self.parent + "/pids.max", "w") as f:
            f.write(str(POD_PIDS))

    def pids_max(self):
        if SYSTEMD:
            return cg_read("pids", expand_slice(self.parent), "pids.max")
        return cg_read("pids", self.parent, "pids.max")

    def children(self):
        """Container cgroups left below the pod's."""
        res = []
        if SYSTEMD:
            roots = ["/sys/fs/cgroup" + expand_slice(self.parent)]
        elif CG2:
            roots = ["/sys/fs/cgroup" + self.parent]
        else:
            roots = sorted({m + self.parent for m in V1.values()})
            roots.append("/sys/fs/cgroup/unified" + self.parent)
        for r in roots:
            if os.path.isdir(r):
                for e in os.scandir(r):
                    if e.is_dir():
                        res.append(e.path)
        return res

    def remove(self):
        if SYSTEMD:
            subprocess.run(["systemctl", "stop", self.parent], capture_output=True)
            return
        dirs = ["/sys/fs/cgroup" + self.parent] if CG2 else \
            sorted({m + self.parent for m in V1.values()}) + ["/sys/fs/cgroup/unified" + self.parent]
        for d in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(d)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ns_of(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def shims():
    """{pid: cmdline} of the runc-v2 shims of our containerd."""
    res = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "containerd-shim-runc-v2" in cmd and args.sock in cmd and alive(p):
            res[int(p)] = cmd
    return res


def mounts_naming(ids):
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if any(i in mp for i in ids):
                res.append(mp)
    return res


def veths():
    r = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True)
    return [l for l in r.stdout.splitlines() if l.strip()]


def runtime_calls():
    try:
        with open(os.path.join(args.tmp, "runtime-calls.log")) as f:
            return f.read().splitlines()
    except OSError:
        return []


def created_by(cid):
    """The runtime (wrapper name) whose `create` made container CID."""
    for line in runtime_calls():
        w = line.split()
        if " create " in f" {line} " and w and w[-1] == cid:
            return w[0]
    return None


# ---------------------------------------------------------------------------------------------
# CRI helpers

LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)) (stdout|stderr) ([PF]) (.*)$")


def read_log(path):
    """The CRI log file as (stream, tag, content) entries; a line not in that format raises."""
    res = []
    with open(path, "rb") as f:
        data = f.read().decode(errors="replace")
    for line in data.split("\n")[:-1]:
        m = LOG_RE.match(line)
        if not m:
            raise ValueError(f"not a CRI log line: {line[:120]!r}")
        res.append((m.group(4), m.group(5), m.group(6)))
    return res


def log_lines(path, stream=None):
    """Whole lines (partial entries joined), of one stream or all."""
    res, cur = [], {}
    for s, tag, content in read_log(path):
        cur[s] = cur.get(s, "") + content
        if tag == "F":
            if stream in (None, s):
                res.append(cur[s])
            cur[s] = ""
    return res


def log_has(path, text, stream=None):
    try:
        return any(text in l for l in log_lines(path, stream))
    except OSError:
        return False


def status(cid):
    return cri.ContainerStatus({"container_id": cid, "verbose": True})


def info_of(resp):
    try:
        return json.loads(resp.info.get("info", "{}"))
    except ValueError:
        return {}


def state_name(st):
    return pb.ContainerState.Name(st)


def wait_exited(cid, timeout=30):
    return wait_until(lambda: status(cid).status.state == pb.CONTAINER_EXITED, timeout)


def xsync(cid, cmd, timeout=30):
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    r = cri.ExecSync({"container_id": cid, "cmd": cmd, "timeout": timeout}, timeout=timeout + 30)
    return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


class Stream:
    """A kubelet-side streaming session (exec/attach) over WebSocket, v4.channel.k8s.io."""

    def __init__(self, url):
        self.url = url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        self.ws = websocket.WebSocket()
        self.ws.connect(self.url, subprotocols=["v4.channel.k8s.io"], timeout=10)
        self.protocol = self.ws.getsubprotocol()
        self.data = {0: b"", 1: b"", 2: b"", 3: b""}
        self.closed = False

    def write(self, data):
        self.ws.send_binary(b"\x00" + data)

    def resize(self, width, height):
        self.ws.send_binary(b"\x04" + json.dumps({"Width": width, "Height": height}).encode())

    def _pump(self, timeout):
        self.ws.settimeout(timeout)
        try:
            op, data = self.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            self.closed = True
            return
        if op == websocket.ABNF.OPCODE_CLOSE:
            self.closed = True
        elif data:
            self.data[data[0]] = self.data.get(data[0], b"") + data[1:]

    def read_until(self, channel, text, timeout=15):
        end = time.time() + timeout
        while text.encode() not in self.data[channel] and not self.closed and time.time() < end:
            self._pump(0.3)
        return text.encode() in self.data[channel]

    def wait_closed(self, timeout=20):
        end = time.time() + timeout
        while not self.closed and time.time() < end:
            self._pump(0.3)
        return self.closed

    def exit_status(self):
        """The exit code from the status on channel 3 (None if there is none)."""
        if not self.data[3]:
            return None
        st = json.loads(self.data[3])
        if st.get("status") == "Success":
            return 0
        for c in st.get("details", {}).get("causes", []):
            if c.get("reason") == "ExitCode":
                return int(c["message"])
        return st

    def text(self, channel):
        return self.data[channel].decode(errors="replace")

    def close(self):
        with contextlib.suppress(Exception):
            self.ws.close()


def pod_config(name, uid, cg, share_pid, extra=None):
    cfg = {
        "metadata": {"name": name, "uid": uid, "namespace": "rrcri", "attempt": 0},
        "hostname": name,
        "log_directory": os.path.join(args.tmp, "logs", f"rrcri_{name}_{uid}"),
        "labels": {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "rrcri",
                   "io.kubernetes.pod.uid": uid, "rrcri.test/run": str(os.getpid())},
        "annotations": {"kubernetes.io/config.source": "api", "rrcri.test/handler": args.handler},
        "linux": {
            "cgroup_parent": cg.parent,
            "security_context": {
                "namespace_options": {"network": "POD", "pid": "POD" if share_pid else "CONTAINER", "ipc": "POD"},
                "seccomp": {"profile_type": "RuntimeDefault"},
            },
        },
    }
    if extra:
        cfg.update(extra)
    os.makedirs(cfg["log_directory"], exist_ok=True)
    return cfg


def ctr_config(name, cmd, share_pid, attempt=0, resources=None, sec=None, **kw):
    c = {
        "metadata": {"name": name, "attempt": attempt},
        "image": {"image": args.image},
        "command": cmd,
        "log_path": f"{name}/{attempt}.log",
        "labels": {"io.kubernetes.container.name": name},
        "annotations": {"io.kubernetes.container.restartCount": str(attempt)},
        "linux": {
            "resources": resources or {},
            "security_context": {
                "namespace_options": {"network": "POD", "pid": "POD" if share_pid else "CONTAINER", "ipc": "POD"},
                "seccomp": {"profile_type": "RuntimeDefault"},
                **(sec or {}),
            },
        },
    }
    c.update(kw)
    return c


class Pod:
    def __init__(self, name, handler, share_pid, extra=None):
        self.name = name
        self.uid = str(uuid.uuid4())
        self.handler = handler
        self.share_pid = share_pid
        self.cg = PodCgroup(f"pod{self.uid.replace('-', '')[:12]}")
        self.config = pod_config(name, self.uid, self.cg, share_pid, extra)
        self.id = None
        self.ctrs = {}  # name/attempt -> id
        self.pids = {}  # what -> pid
        self.ip = None
        self.netns = None

    def run(self):
        self.cg.create()
        r = cri.RunPodSandbox({"config": self.config, "runtime_handler": self.handler})
        self.id = r.pod_sandbox_id
        return self.id

    def status(self):
        return cri.PodSandboxStatus({"pod_sandbox_id": self.id, "verbose": True})

    def create(self, key, cfg):
        r = cri.CreateContainer({"pod_sandbox_id": self.id, "config": cfg, "sandbox_config": self.config})
        self.ctrs[key] = r.container_id
        return r.container_id

    def log(self, name, attempt=0):
        return os.path.join(self.config["log_directory"], name, f"{attempt}.log")

    def ids(self):
        return [i for i in [self.id] + list(self.ctrs.values()) if i]

    def leftovers(self):
        """What of this pod is still on the node after RemovePodSandbox."""
        left = []
        for what, pid in self.pids.items():
            if alive(pid):
                left.append(f"process {what} (pid {pid})")
        for pid, cmd in shims().items():
            if f"-id {self.id}" in cmd:
                left.append(f"shim {pid}: {cmd}")
        left += [f"mount {m}" for m in mounts_naming(self.ids())]
        left += [f"cgroup {c}" for c in self.cg.children()]
        for i in self.ids():
            for d in (f"{args.tmp}/runtime-root/{self.handler}/{NS}/{i}",
                      f"{args.tmp}/state/io.containerd.runtime.v2.task/{NS}/{i}",
                      f"{args.tmp}/root/io.containerd.grpc.v1.cri/containers/{i}",
                      f"{args.tmp}/root/io.containerd.grpc.v1.cri/sandboxes/{i}",
                      f"/var/lib/cni/results/rrcri-{i}-eth0",
                      f"/var/lib/cni/results/cni-loopback-{i}-lo"):
                if os.path.lexists(d):
                    left.append(d)
        if self.netns and os.path.lexists(self.netns):
            left.append(f"netns {self.netns}")
        if self.ip and os.path.lexists(f"{args.tmp}/cni-ipam/rrcri/{self.ip}"):
            left.append(f"IP {self.ip} still allocated")
        return left


# ---------------------------------------------------------------------------------------------
# The kubelet's sequence


def runtime_ready():
    st = cri.Status({"verbose": False})
    conds = {c.type: c.status for c in st.status.conditions}
    return conds


def seq_node():
    v = cri.Version({"version": "v1"})
    check(f"Version: {v.runtime_name} {v.runtime_version}, CRI {v.runtime_api_version}",
          v.runtime_name == "containerd" and v.runtime_api_version == "v1", str(v))
    conds = wait_until(lambda: (lambda c: c if c.get("NetworkReady") else None)(runtime_ready()), 20) or runtime_ready()
    check("Status: RuntimeReady and NetworkReady (the CNI config is loaded)",
          conds.get("RuntimeReady") and conds.get("NetworkReady"), str(conds))
    im = cri.ImageStatus({"image": {"image": args.image}})
    check("ImageStatus: the busybox image is on the node (the kubelet would pull otherwise)",
          im.image.id and args.image in im.image.repo_tags, str(im))
    imgs = cri.ListImages({})
    check("ListImages: the pause image is there (the sandbox image, never pulled)",
          any(args.pause_image in i.repo_tags for i in imgs.images))


def seq_pod_a(h):
    """A pod with two containers sharing network, IPC and (shareProcessNamespace) PID."""
    pod = Pod("rrcri-web", h, share_pid=True, extra={
        "dns_config": {"servers": ["10.88.77.53"], "searches": ["rrcri.svc.cluster.test"], "options": ["ndots:5"]},
    })
    pod.config["linux"]["sysctls"] = {"net.ipv4.ip_local_port_range": "20000 40000", "kernel.shm_rmid_forced": "1"}
    www = os.path.join(args.tmp, "www")
    data = os.path.join(args.tmp, "data")
    os.makedirs(www, exist_ok=True)
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("hello from the rrcri pod\n")

    t0 = time.time()
    with step(f"RunPodSandbox (runtime_handler {h}, shareProcessNamespace, cgroup_parent {pod.cg.parent})"):
        pod.run()
    if not pod.id:
        return pod
    run_time = time.time() - t0
    st = pod.status()
    info = info_of(st)
    pod.pids["pause"] = info.get("pid", 0)
    eq("PodSandboxStatus: SANDBOX_READY", "SANDBOX_READY", pb.PodSandboxState.Name(st.status.state))
    eq("PodSandboxStatus: runtime_handler", h, st.status.runtime_handler)
    pod.ip = st.status.network.ip
    check(f"PodSandboxStatus: a pod IP from CNI host-local in 10.88.77.0/24 ({pod.ip})",
          pod.ip.startswith("10.88.77."), str(st.status.network))
    opts = info.get("runtimeOptions") or {}
    check(f"the sandbox runs on the {h} handler's shim and binary ({info.get('runtimeType')}, {opts.get('binary_name')})",
          info.get("runtimeType") == "io.containerd.runc.v2" and str(opts.get("binary_name", "")).endswith("/" + h),
          json.dumps({k: info.get(k) for k in ("runtimeHandler", "runtimeType", "runtimeOptions")}))
    eq("the shim ran the handler's runtime for the pause container (create)", h, created_by(pod.id))
    spec = info.get("runtimeSpec") or {}
    for n in (spec.get("linux") or {}).get("namespaces") or []:
        if n.get("type") == "network":
            pod.netns = n.get("path")
    check("the pod's network namespace is a mount under containerd's state dir",
          bool(pod.netns) and pod.netns.startswith(args.tmp) and pod.netns in "".join(mounts_naming([os.path.basename(pod.netns or "x")])),
          str(pod.netns))
    check(f"the pause process is alive (pid {pod.pids['pause']}), pid 1 of the pod's PID namespace",
          pod.pids["pause"] and alive(pod.pids["pause"]) and _nspid(pod.pids["pause"]) == "1",
          f"NSpid: {_nspid(pod.pids['pause']) if pod.pids['pause'] else None}")
    print(f"      (RunPodSandbox: {run_time:.2f}s)")

    res_app = {"cpu_period": 100000, "cpu_quota": 50000, "cpu_shares": 512,
               "memory_limit_in_bytes": 64 * MiB, "cpuset_cpus": "0", "oom_score_adj": 500}
    app_cmd = ["sh", "-c", 'echo app-started; echo app-err >&2; while read l; do echo "echo:$l"; done; '
               'echo stdin-closed; sleep 3600']
    app = side = None
    with step("CreateContainer app (stdin, resources, env, workingDir, hostPath volumes rw and ro)"):
        app = pod.create("app", ctr_config(
            "app", app_cmd, True, resources=res_app, stdin=True, stdin_once=False,
            envs=[{"key": "FOO", "value": "bar"}], working_dir="/tmp",
            mounts=[{"container_path": "/data", "host_path": data},
                    {"container_path": "/config", "host_path": www, "readonly": True}]))
    with step("CreateContainer sidecar (httpd as uid 65534, read-only rootfs, read-only volume)"):
        side = pod.create("sidecar", ctr_config(
            "sidecar", ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"], True,
            sec={"run_as_user": {"value": 65534}, "readonly_rootfs": True},
            mounts=[{"container_path": "/www", "host_path": www, "readonly": True}]))
    if not app or not side:
        return pod
    eq("ContainerStatus after CreateContainer: CONTAINER_CREATED", "CONTAINER_CREATED", state_name(status(app).status.state))
    for n, c in (("app", app), ("sidecar", side)):
        with step(f"StartContainer {n}"):
            cri.StartContainer({"container_id": c})
    for n, c in (("app", app), ("sidecar", side)):
        s = status(c)
        pod.pids[n] = info_of(s).get("pid", 0)
        check(f"ContainerStatus {n}: CONTAINER_RUNNING, started_at set, metadata and log path kept",
              s.status.state == pb.CONTAINER_RUNNING and s.status.started_at > 0 and s.status.metadata.name == n
              and s.status.log_path == pod.log(n), str(s.status)[:800])
        eq(f"the shim ran the handler's runtime for {n}", h, created_by(c))
    lst = cri.ListContainers({"filter": {"pod_sandbox_id": pod.id}})
    check("ListContainers: both containers of the pod, running",
          sorted((c.metadata.name, state_name(c.state)) for c in lst.containers)
          == [("app", "CONTAINER_RUNNING"), ("sidecar", "CONTAINER_RUNNING")], str(lst)[:800])

    # Namespaces, seen from the node.
    pp, ap_, sp = pod.pids.get("pause"), pod.pids.get("app"), pod.pids.get("sidecar")
    if pp and ap_ and sp and alive(ap_) and alive(sp):
        for kind in ("net", "ipc", "uts", "pid"):
            check(f"the containers share the pod's {kind} namespace (pause, app, sidecar: one {kind} ns)",
                  ns_of(pp, kind) == ns_of(ap_, kind) == ns_of(sp, kind),
                  f"{ns_of(pp, kind)} {ns_of(ap_, kind)} {ns_of(sp, kind)}")
        check("each container has its own mount namespace",
              len({ns_of(pp, "mnt"), ns_of(ap_, "mnt"), ns_of(sp, "mnt")}) == 3)
        check("the pod is not in the node's network namespace", ns_of(pp, "net") != ns_of(os.getpid(), "net"))
    else:
        bad("the containers' processes are not there", f"pids {pod.pids}")

    # ExecSync: what the kubelet's exec probes use.
    with step("ExecSync: exit code, stdout and stderr apart"):
        rc, out, err = xsync(app, "echo out; echo err >&2; exit 3")
        if (rc, out, err) != (3, "out\n", "err\n"):
            raise AssertionError(f"got exit {rc}, stdout {out!r}, stderr {err!r}")
    with step("ExecSync: the container's env and working dir"):
        rc, out, _ = xsync(app, 'echo "$FOO $(pwd)"')
        if out != "bar /tmp\n":
            raise AssertionError(repr(out))
    rc, out, err = xsync(app, "hostname; cat /etc/resolv.conf; ip -4 -o addr show eth0")
    check("the pod's hostname, DNS config (/etc/resolv.conf) and IP inside the container",
          out.startswith("rrcri-web\n") and "nameserver 10.88.77.53" in out and "search rrcri.svc.cluster.test" in out
          and "ndots:5" in out and f"inet {pod.ip}/" in out, out + err)
    rc, out, err = xsync(app, "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shm_rmid_forced")
    check("the pod's sysctls (net.ipv4.ip_local_port_range, kernel.shm_rmid_forced)",
          out.split() == ["20000", "40000", "1"], out + err)
    rc, out, err = xsync(app, "tr '\\0' ' ' </proc/1/cmdline; echo; ps -o user,args")
    check("shareProcessNamespace: pid 1 is the pause process, the sidecar's httpd is visible",
          out.startswith("/pause") and re.search(r"(nobody|65534) +httpd", out) is not None, out + err)
    rc, out, err = xsync(app, "wget -q -O - http://127.0.0.1:8080/index.html")
    check("one network namespace: app reaches the sidecar's httpd on 127.0.0.1:8080",
          out == "hello from the rrcri pod\n", out + err)
    try:
        body = urllib.request.urlopen(f"http://{pod.ip}:8080/index.html", timeout=5).read().decode()
    except Exception as e:  # noqa: BLE001
        body = f"{type(e).__name__}: {e}"
    check(f"the node reaches the pod at its IP over the CNI bridge (http://{pod.ip}:8080)",
          body == "hello from the rrcri pod\n", body)
    rc, out, err = xsync(side, "id -u; touch /x 2>&1; touch /www/y 2>&1; true")
    check("sidecar: runs as uid 65534, read-only rootfs, read-only volume",
          out.startswith("65534\n") and "touch: /x: Read-only file system" in out
          and "touch: /www/y: Read-only file system" in out, out + err)
    rc, out, err = xsync(app, "echo from-app >/data/f && cat /config/index.html && grep Seccomp: /proc/self/status")
    try:
        with open(os.path.join(data, "f")) as f:
            host_sees = f.read()
    except OSError as e:
        host_sees = str(e)
    check("app: the rw volume writes to the node, the ro one reads; seccomp RuntimeDefault (mode 2)",
          host_sees == "from-app\n" and "hello from the rrcri pod" in out and re.search(r"Seccomp:\s+2", out),
          out + err + host_sees)
    try:
        with open(f"/proc/{pod.pids['app']}/oom_score_adj") as f:
            adj = f.read().strip()
    except OSError as e:
        adj = str(e)
    eq("app's process: oom_score_adj 500 (resources.oom_score_adj)", "500", adj)
    rc, out, err = xsync(app, "cat /proc/self/oom_score_adj")
    eq("ExecSync: the exec'd process has the container's oom_score_adj too (runc: 500)", "500", out.strip())

    # Exec with a timeout: the kubelet's probe timeout.
    t = time.time()
    try:
        xsync(app, ["sleep", "31"], timeout=1)
        timed_out = "no error"
    except grpc.RpcError as e:
        timed_out = f"{e.code().name}: {e.details()}"
    el = time.time() - t
    check(f"ExecSync timeout 1s: an error after {el:.1f}s", "timeout" in timed_out.lower() and el < 15, timed_out)
    gone_ = wait_until(lambda: xsync(app, "ps -o args | grep -c '^sleep 31$'")[1].strip() == "0", 10)
    check("ExecSync timeout: the exec'd process is killed", gone_)

    # Exec streaming, as kubectl exec: not a tty, then a tty.
    s = s2 = at = None
    with step("Exec (stdin, stdout, stderr): the streaming URL"):
        r = cri.Exec({"container_id": app, "cmd": ["sh", "-c", "read l; echo got:$l; echo to-err >&2; exit 5"],
                      "stdin": True, "stdout": True, "stderr": True})
        s = Stream(r.url)
    if s:
        eq("the streaming server speaks v4.channel.k8s.io over WebSocket", "v4.channel.k8s.io", s.protocol)
        s.write(b"hello\n")
        s.wait_closed()
        check("Exec stream: stdin reaches the process, stdout and stderr come back apart",
              s.text(1) == "got:hello\n" and s.text(2) == "to-err\n", repr(s.data))
        eq("Exec stream: the exit code on the error channel", 5, s.exit_status())
        s.close()
    with step("Exec (tty): the streaming URL"):
        r = cri.Exec({"container_id": app, "tty": True, "stdin": True, "stdout": True, "cmd": ["sh", "-c",
                      'for i in 1 2 3 4 5 6 7 8 9 10; do s=$(stty size 2>/dev/null); [ -n "$s" ] && [ "$s" != "0 0" ] && break; '
                      'sleep 0.2; done; echo "size $s"; tty']})
        s2 = Stream(r.url)
        s2.resize(101, 33)
    if s2:
        s2.wait_closed()
        out = s2.text(1)
        check("Exec stream with a tty: a terminal, resized to 33x101 (the resize channel)",
              "size 33 101" in out and "/dev/pts/" in out, repr(out))
        eq("Exec stream with a tty: exit code 0", 0, s2.exit_status())
        s2.close()

    # Attach (kubectl attach -i) to app's stdin; the output lands in its CRI log too.
    log = pod.log("app")
    with step("Attach (stdin, stdout, stderr): the streaming URL"):
        r = cri.Attach({"container_id": app, "stdin": True, "stdout": True, "stderr": True})
        at = Stream(r.url)
    if at:
        at.write(b"ping\n")
        check("Attach: a line written to the container's stdin comes back on stdout",
              at.read_until(1, "echo:ping\n"), repr(at.data))
        long = "L" * 20000
        at.write(long.encode() + b"\n")
        at.read_until(1, "L" * 100 + "\n", timeout=15)
        at.close()
        time.sleep(0.3)
        eq("Attach: closing the stream leaves the container running", "CONTAINER_RUNNING", state_name(status(app).status.state))
        # containerd writes the log as the output comes: give it a moment.
        wait_until(lambda: ("echo:" + long) in log_lines(log), 5)
        try:
            entries = read_log(log)
            lines = log_lines(log)
            fmt = None
        except Exception as e:  # noqa: BLE001
            entries, lines, fmt = [], [], str(e)
        check("container log: every line in the CRI format (RFC3339Nano stream tag content)", entries and fmt is None, fmt)
        check("container log: stdout and stderr lines of the container, and what attach sent",
              ("stdout", "F", "app-started") in entries and ("stderr", "F", "app-err") in entries
              and ("stdout", "F", "echo:ping") in entries, "\n".join(map(str, entries[:10])))
        check("container log: a 20005-byte line is split into partial (P) entries of at most 16 KiB, and joins back",
              any(t == "P" for _, t, _ in entries) and ("echo:" + long) in lines
              and all(len(c) <= 16384 for _, _, c in entries),
              str([(s_, t, len(c)) for s_, t, c in entries]))
        # Log rotation: the kubelet renames the file and asks for a new one.
        with step("ReopenContainerLog after the kubelet rotated the file"):
            os.rename(log, log + ".1")
            cri.ReopenContainerLog({"container_id": app})
        at2 = Stream(cri.Attach({"container_id": app, "stdin": True, "stdout": True, "stderr": True}).url)
        at2.write(b"after-rotate\n")
        at2.read_until(1, "echo:after-rotate")
        at2.close()
        check("after ReopenContainerLog, new output goes to a new log file",
              wait_until(lambda: log_has(log, "echo:after-rotate"), 5) and not log_has(log + ".1", "after-rotate"))

    # Resources: the container's cgroup, from the node.
    want_cg = container_cgroup(pod.cg.parent, app)
    cgs = proc_cgroups(pod.pids["app"]) if alive(pod.pids.get("app", 0)) else {}
    check(f"app's cgroup is the one containerd asked for ({want_cg})",
          all(cgs.get(ctrl_of(c)) == want_cg for c in ("cpu", "memory", "pids")), str(cgs))
    check_resources("CreateContainer resources", app, want_cg, 50000, 100000, 512, 64 * MiB, "0")
    try:
        pm = pod.cg.pids_max()
    except OSError as e:
        pm = str(e)
    eq("the pod's pids limit (kubelet's podPidsLimit) is on the pod's cgroup", str(POD_PIDS), pm)
    rc, out, err = xsync(app, "i=0; while [ $i -lt 64 ]; do sleep 2 & i=$((i+1)); done; echo forked $i")
    check(f"the pod's pids limit holds inside the container: the 64th fork fails (pids.max {POD_PIDS} on the pod)",
          rc != 0 and "forked 64" not in out and "fork" in err, f"exit {rc}: {out}{err}")
    time.sleep(2.5)
    st_ = cri.ContainerStats({"container_id": app})
    check("ContainerStats: memory working set and CPU usage from the container's cgroup",
          st_.stats.memory.working_set_bytes.value > 0 and st_.stats.cpu.usage_core_nano_seconds.value > 0,
          str(st_.stats)[:600])
    n0 = len(runtime_calls())
    with step("UpdateContainerResources: cpu quota 20000, shares 256, memory 96 MiB"):
        cri.UpdateContainerResources({"container_id": app, "linux": {
            "cpu_period": 100000, "cpu_quota": 20000, "cpu_shares": 256,
            "memory_limit_in_bytes": 96 * MiB, "cpuset_cpus": "0", "oom_score_adj": 500}})
    check("UpdateContainerResources reached the runtime (update --resources)",
          any(l.startswith(h + " ") and " update " in l for l in runtime_calls()[n0:]), "\n".join(runtime_calls()[n0:]))
    check_resources("after UpdateContainerResources", app, want_cg, 20000, 100000, 256, 96 * MiB, "0")

    # The kubelet stops each container (grace period), then the sandbox, then removes.
    for n, c in (("app", app), ("sidecar", side)):
        t = time.time()
        with step(f"StopContainer {n} (grace period 10s; SIGTERM ends it)"):
            cri.StopContainer({"container_id": c, "timeout": 10}, timeout=60)
        el = time.time() - t
        s = status(c).status
        check(f"{n}: CONTAINER_EXITED by SIGTERM (exit 143) in {el:.1f}s, reason Error, finished_at set",
              s.state == pb.CONTAINER_EXITED and s.exit_code == 143 and s.reason == "Error" and el < 8
              and s.finished_at >= s.started_at > 0, f"{state_name(s.state)} exit {s.exit_code} {s.reason} {el:.1f}s")
    for n, c in (("app", app), ("sidecar", side)):
        with step(f"RemoveContainer {n}"):
            cri.RemoveContainer({"container_id": c})
    lst = cri.ListContainers({"filter": {"pod_sandbox_id": pod.id}})
    eq("ListContainers: none left in the pod", [], [c.id for c in lst.containers])
    stop_remove(pod)
    return pod


def _nspid(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return line.split()[-1]
    except OSError:
        pass
    return None


def check_resources(when, cid, path, quota, period, shares, mem, cpus):
    try:
        if CG2:
            got = (cg_read("", path, "cpu.max"), cg_read("", path, "cpu.weight"),
                   cg_read("", path, "memory.max"), cg_read("", path, "cpuset.cpus"))
            want = (f"{quota} {period}", str(1 + ((shares - 2) * 9999) // 262142), str(mem), cpus)
            names = "cpu.max, cpu.weight, memory.max, cpuset.cpus"
        else:
            got = (cg_read("cpu", path, "cpu.cfs_quota_us"), cg_read("cpu", path, "cpu.cfs_period_us"),
                   cg_read("cpu", path, "cpu.shares"), cg_read("memory", path, "memory.limit_in_bytes"),
                   cg_read("cpuset", path, "cpuset.cpus"))
            want = (str(quota), str(period), str(shares), str(mem), cpus)
            names = "cpu.cfs_quota_us, cpu.cfs_period_us, cpu.shares, memory.limit_in_bytes, cpuset.cpus"
    except OSError as e:
        got, want, names = str(e), "", "cgroup files"
    check(f"{when}: {names} = {', '.join(want) if isinstance(want, tuple) else want}", got == want, f"got {got}")


def stop_remove(pod):
    with step("StopPodSandbox"):
        cri.StopPodSandbox({"pod_sandbox_id": pod.id}, timeout=120)
    try:
        st = pod.status()
        eq("PodSandboxStatus after StopPodSandbox: SANDBOX_NOTREADY", "SANDBOX_NOTREADY",
           pb.PodSandboxState.Name(st.status.state))
    except grpc.RpcError as e:
        bad("PodSandboxStatus after StopPodSandbox", e.details())
    check("StopPodSandbox: the pause process is gone",
          not pod.pids.get("pause") or wait_until(lambda: not alive(pod.pids["pause"]), 10))
    with step("RemovePodSandbox"):
        cri.RemovePodSandbox({"pod_sandbox_id": pod.id}, timeout=120)
    try:
        pod.status()
        bad("PodSandboxStatus after RemovePodSandbox: NotFound", "the sandbox is still known")
    except grpc.RpcError as e:
        eq("PodSandboxStatus after RemovePodSandbox: NotFound", "NOT_FOUND", e.code().name)
    left = settle(pod.leftovers, 10)
    check("nothing of the pod is left (processes, shim, mounts, container cgroups, runtime state, "
          "bundles, netns, IP, CNI cache)", not left, "\n".join(left))
    check("no veth left in the node's network namespace", wait_until(lambda: not veths(), 5), "\n".join(veths()))
    pod.cg.remove()


def seq_pod_b(h):
    """A pod whose containers have their own PID namespaces: OOM, exit and restart (a new
    attempt), graceful and forced stops, a start error."""
    pod = Pod("rrcri-life", h, share_pid=False)
    with step(f"RunPodSandbox (runtime_handler {h}, PID namespace per container)"):
        pod.run()
    if not pod.id:
        return pod
    pod.pids["pause"] = info_of(pod.status()).get("pid", 0)

    def start(key, cfg):
        cid = pod.create(key, cfg)
        cri.StartContainer({"container_id": cid})
        pod.pids[key] = info_of(status(cid)).get("pid", 0)
        return cid

    # OOM: 32 MiB and a shell doubling a string.
    oom = None

    def pod_oom_kills():
        """oom_kill of the pod's slice (memory.events counts the subtree's): it outlives the
        container's scope, which systemd removes as soon as it is empty."""
        try:
            with open("/sys/fs/cgroup" + expand_slice(pod.cg.parent) + "/memory.events") as f:
                return int(dict(line.split() for line in f)["oom_kill"])
        except (OSError, KeyError, ValueError):
            return None

    kills0 = pod_oom_kills() if SYSTEMD else None
    with step("an OOM container (memory limit 32 MiB) is created and started"):
        oom = start("oom", ctr_config("oom", ["sh", "-c", "x=a; while :; do x=$x$x; done"], False,
                                      resources={"memory_limit_in_bytes": 32 * MiB}))
    if oom:
        wait_exited(oom, 60)
        s = status(oom).status
        detail = f"{state_name(s.state)} reason {s.reason!r} exit {s.exit_code} message {s.message!r}"
        if not SYSTEMD:
            check(f"OOM-killed container: reason OOMKilled, exit 137 (got {s.reason or '-'}, {s.exit_code})",
                  s.state == pb.CONTAINER_EXITED and s.reason == "OOMKilled" and s.exit_code == 137,
                  detail)
        else:
            # With systemd, the runtime's part is checked strictly: the kernel's OOM killer
            # killed it in its cgroup (exit 137, the pod slice's oom_kill went up). The reason
            # is containerd's: its shim reads the scope's memory.events after the kill, and
            # systemd may remove the emptied scope first; then the reason is Error. A known
            # engine race (containerd#8180; containerd#12714 skips critest's OOMKilled case for
            # the systemd driver; conmon#426), said on a NOTE line, not counted.
            kills1 = pod_oom_kills()
            check(f"OOM-killed container: exit 137, the pod slice's memory.events oom_kill "
                  f"{kills0} -> {kills1}",
                  s.state == pb.CONTAINER_EXITED and s.exit_code == 137 and kills0 is not None
                  and kills1 is not None and kills1 > kills0, detail)
            if s.reason == "OOMKilled":
                check("OOM-killed container: reason OOMKilled", True)
            else:
                print(f"NOTE: {SECTION}: OOM-killed container: reason {s.reason!r}, not OOMKilled: "
                      "containerd's shim lost the OOM event to systemd's removal of the empty "
                      "scope (containerd#8180, containerd#12714, conmon#426)", flush=True)

    # A container that exits, restarted by the kubelet: the same config, attempt + 1.
    cmd = ["sh", "-c", 'echo "run as pid $$"; exit 3']
    c0 = c1 = None
    with step("a container that exits (exit 3) is created and started (attempt 0)"):
        c0 = start("crash/0", ctr_config("crash", cmd, False))
    if c0:
        wait_exited(c0)
        s = status(c0).status
        check("it exits: CONTAINER_EXITED, exit code 3, reason Error",
              s.state == pb.CONTAINER_EXITED and s.exit_code == 3 and s.reason == "Error",
              f"{state_name(s.state)} exit {s.exit_code} reason {s.reason!r}")
        check("its own PID namespace: the container's process is pid 1 (crash/0.log)",
              wait_until(lambda: log_has(pod.log("crash", 0), "run as pid 1", "stdout"), 5))
        with step("the kubelet restarts it: CreateContainer attempt 1, StartContainer"):
            c1 = start("crash/1", ctr_config("crash", cmd, False, attempt=1))
    if c1:
        wait_exited(c1)
        s = status(c1).status
        check("the new attempt: another container, metadata attempt 1, exited 3, its own log crash/1.log",
              c1 != c0 and s.metadata.attempt == 1 and s.exit_code == 3 and s.log_path == pod.log("crash", 1)
              and wait_until(lambda: log_has(pod.log("crash", 1), "run as pid 1"), 5),
              f"attempt {s.metadata.attempt} exit {s.exit_code} log {s.log_path}")
        lst = cri.ListContainers({"filter": {"pod_sandbox_id": pod.id, "label_selector": {"io.kubernetes.container.name": "crash"}}})
        check("ListContainers: both attempts, exited (the kubelet keeps the last dead one)",
              sorted(c.metadata.attempt for c in lst.containers) == [0, 1]
              and all(c.state == pb.CONTAINER_EXITED for c in lst.containers), str(lst)[:600])
        with step("RemoveContainer attempt 0 (the kubelet's garbage collection)"):
            cri.RemoveContainer({"container_id": c0})

    # Stop with a grace period: a process that exits on SIGTERM, one that ignores it.
    g = sb = None
    with step("a container trapping SIGTERM to exit 0 is started"):
        g = start("graceful", ctr_config("graceful", ["sh", "-c", 'trap "echo term-received; exit 0" TERM; echo ready; '
                                                      'while :; do sleep 0.1; done'], False))
    with step("a container ignoring SIGTERM is started"):
        sb = start("stubborn", ctr_config("stubborn", ["sh", "-c", 'trap "echo ignoring-TERM" TERM; echo ready; '
                                                       'while :; do sleep 0.1; done'], False))
    for key, cid in (("graceful", g), ("stubborn", sb)):
        if cid:
            wait_until(lambda: log_has(pod.log(key), "ready"), 10)
    if g:
        t = time.time()
        with step("StopContainer graceful (grace period 10s)"):
            cri.StopContainer({"container_id": g, "timeout": 10}, timeout=60)
        el = time.time() - t
        s = status(g).status
        check(f"SIGTERM first: it exits 0 by its trap, well inside the grace period ({el:.1f}s)",
              s.state == pb.CONTAINER_EXITED and s.exit_code == 0 and el < 5
              and wait_until(lambda: log_has(pod.log("graceful"), "term-received"), 5),
              f"{state_name(s.state)} exit {s.exit_code} {el:.1f}s")
    if sb:
        t = time.time()
        with step("StopContainer stubborn (grace period 2s)"):
            cri.StopContainer({"container_id": sb, "timeout": 2}, timeout=60)
        el = time.time() - t
        s = status(sb).status
        check(f"SIGTERM, then SIGKILL when the 2s grace period is over: exit 137 after {el:.1f}s",
              s.state == pb.CONTAINER_EXITED and s.exit_code == 137 and 1.8 <= el < 10
              and log_has(pod.log("stubborn"), "ignoring-TERM"),
              f"{state_name(s.state)} exit {s.exit_code} {el:.1f}s; log: {log_lines(pod.log('stubborn')) if os.path.exists(pod.log('stubborn')) else '-'}")

    # A start error (a missing executable) reaches the kubelet, and leaves nothing behind.
    bad_id = None
    with step("CreateContainer with a missing executable"):
        bad_id = pod.create("noexe", ctr_config("noexe", ["/nonexistent"], False))
    if bad_id:
        try:
            cri.StartContainer({"container_id": bad_id})
            err = "no error"
        except grpc.RpcError as e:
            err = e.details()
        check("StartContainer fails with the runtime's error naming /nonexistent", "/nonexistent" in err, err)
        s = status(bad_id).status
        check(f"ContainerStatus: CONTAINER_EXITED, exit 128, reason StartError (got {s.reason or '-'})",
              s.state == pb.CONTAINER_EXITED and s.exit_code == 128 and s.reason == "StartError",
              f"{state_name(s.state)} exit {s.exit_code} reason {s.reason!r} message {s.message!r}")
        check("the failed start left no runtime state",
              not os.path.exists(f"{args.tmp}/runtime-root/{h}/{NS}/{bad_id}"))

    # The remaining (exited) containers go with RemovePodSandbox, as the CRI requires.
    stop_remove(pod)
    lst = cri.ListContainers({"filter": {"pod_sandbox_id": pod.id}})
    eq("RemovePodSandbox removed the pod's exited containers", [], [c.id for c in lst.containers])
    return pod


def sequence():
    global SECTION
    h = args.handler
    SECTION = f"cri/{h}/{'systemd' if SYSTEMD else 'cgroupfs'}"
    seq_node()
    seq_pod_a(h)
    seq_pod_b(h)
    check("no shim of our containerd is left", wait_until(lambda: not shims(), 10), str(shims()))


# ---------------------------------------------------------------------------------------------
# Many pods at once


def one_pod(h, i, res):
    pod = Pod(f"rrcri-scale-{h}-{i}", h, share_pid=False)
    pod.config["annotations"]["rrcri.test/handler"] = h
    rec = {"handler": h, "ok": False, "err": None}
    try:
        pod.cg.create()
        t0 = time.time()
        r = cri.RunPodSandbox({"config": pod.config, "runtime_handler": h})
        pod.id = r.pod_sandbox_id
        t1 = time.time()
        cid = pod.create("c", ctr_config("c", ["sleep", "3600"], False))
        cri.StartContainer({"container_id": cid})
        t2 = time.time()
        s = status(cid).status
        if s.state != pb.CONTAINER_RUNNING:
            raise RuntimeError(f"container {state_name(s.state)}")
        t3 = time.time()
        cri.StopPodSandbox({"pod_sandbox_id": pod.id})
        cri.RemovePodSandbox({"pod_sandbox_id": pod.id})
        t4 = time.time()
        rec.update(ok=True, total=(t4 - t3) + (t2 - t0), run=t1 - t0, start=t2 - t1, stop=t4 - t3,
                   created=created_by(pod.id), ctr_created=created_by(cid))
    except grpc.RpcError as e:
        rec["err"] = f"{e.code().name}: {e.details()}"
    except Exception as e:  # noqa: BLE001
        rec["err"] = f"{type(e).__name__}: {e}"
    finally:
        rec["pod"] = pod
        res[i] = rec


def batch(h, n):
    res = [None] * n
    th = [threading.Thread(target=one_pod, args=(h, i, res)) for i in range(n)]
    t0 = time.time()
    for t in th:
        t.start()
    for t in th:
        t.join()
    wall = time.time() - t0
    for r in res:
        r["pod"].cg.remove()
    return res, wall


def scale():
    global SECTION
    SECTION = f"scale/{'systemd' if SYSTEMD else 'cgroupfs'}"
    n = args.pods
    order = ["rrun", "runc"] * args.rounds
    per = {"rrun": [], "runc": []}
    walls = {"rrun": [], "runc": []}
    for rnd, h in enumerate(order):
        res, wall = batch(h, n)
        fails = [r for r in res if not r["ok"]]
        wrong = [r for r in res if r["ok"] and (r["created"] != h or r["ctr_created"] != h)]
        check(f"round {rnd // 2 + 1}, {h}: {n} pods at once (RunPodSandbox, CreateContainer, StartContainer, "
              f"StopPodSandbox, RemovePodSandbox): {n - len(fails)} ok, {len(fails)} failed, {wall:.1f}s",
              not fails, "\n".join(sorted({r['err'] for r in fails})))
        check(f"round {rnd // 2 + 1}, {h}: every pod and container was made by {h}", not wrong,
              "\n".join(f"{r['pod'].name}: {r['created']} {r['ctr_created']}" for r in wrong))
        left = settle(lambda: [x for r in res for x in r["pod"].leftovers()], 15)
        check(f"round {rnd // 2 + 1}, {h}: nothing left of the {n} pods", not left, "\n".join(left[:20]))
        per[h] += [r["total"] for r in res if r["ok"]]
        walls[h].append(wall)
        for stage in ("run", "start", "stop"):
            vals = [r[stage] for r in res if r["ok"]]
            if vals:
                print(f"      {h} round {rnd // 2 + 1}: {stage:5s} median {statistics.median(vals):.2f}s max {max(vals):.2f}s")
    lst = cri.ListPodSandbox({})
    eq("ListPodSandbox: no pod left", [], [p.id for p in lst.items])
    check("no shim left", wait_until(lambda: not shims(), 10), str(shims()))
    check("no veth left", wait_until(lambda: not veths(), 5), "\n".join(veths()))
    if per["rrun"] and per["runc"]:
        mr, mc = statistics.median(per["rrun"]), statistics.median(per["runc"])
        wr, wc = sum(walls["rrun"]) / len(walls["rrun"]), sum(walls["runc"]) / len(walls["runc"])
        print(f"      per pod (RunPodSandbox+CreateContainer+StartContainer+StopPodSandbox+RemovePodSandbox, "
              f"{n} at once, {args.rounds} rounds each):")
        for h in ("rrun", "runc"):
            v = per[h]
            print(f"        {h}: median {statistics.median(v):.2f}s mean {statistics.mean(v):.2f}s "
                  f"max {max(v):.2f}s; batch wall {sum(walls[h]) / len(walls[h]):.1f}s")
        print(f"      ratio rrun/runc: per pod (median) {mr / mc:.2f}, batch wall {wr / wc:.2f}")


def cleanup():
    global SECTION
    SECTION = "cleanup"
    pods = cri.ListPodSandbox({}).items
    for p in pods:
        with contextlib.suppress(grpc.RpcError):
            cri.StopPodSandbox({"pod_sandbox_id": p.id})
        with contextlib.suppress(grpc.RpcError):
            cri.RemovePodSandbox({"pod_sandbox_id": p.id})
    ctrs = cri.ListContainers({}).containers
    if args.check:
        check("no pod or container left in containerd (ListPodSandbox, ListContainers)",
              not pods and not ctrs, f"pods {[p.id for p in pods]} containers {[c.id for c in ctrs]}")


def main():
    try:
        if args.mode == "sequence":
            sequence()
        elif args.mode == "scale":
            scale()
        else:
            cleanup()
    except Exception as e:  # noqa: BLE001
        bad(f"{args.mode} stopped", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        write_counts()
    sys.exit(1 if COUNTS[1] else 0)


if __name__ == "__main__":
    main()
