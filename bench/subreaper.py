#!/usr/bin/env python3
"""Run a command as a child subreaper and reap every orphan that lands on us.

usage: subreaper.py CMD [ARGS...]

Detached containers (create / run -d) outlive the runtime process that
started them; their init is re-parented to the nearest subreaper ancestor.
PID 1 on the bench host reaps slowly, so without this wrapper stopped
containers linger as zombies. We set PR_SET_CHILD_SUBREAPER, fork+exec the
command, and block in wait() so every orphan is reaped as soon as it exits.
Our exit status is the command's.

SIGINT/SIGQUIT are ignored here (the terminal sends them to the whole
process group; the benchmark script traps them and cleans up), SIGTERM and
SIGHUP are forwarded to the command.
"""
import ctypes
import errno
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        print(f"subreaper: prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(e)}", file=sys.stderr)
        # Still run the command; zombies are then only tolerated, not reaped.

    child = os.fork()
    if child == 0:
        # Child: default signal dispositions, then exec.
        for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        try:
            os.execvp(sys.argv[1], sys.argv[1:])
        except OSError as ex:
            print(f"subreaper: exec {sys.argv[1]}: {ex}", file=sys.stderr)
            os._exit(127)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)

    status = None
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            status = st
            break
    # Reap whatever else already exited; do not wait for live strays (the
    # script is responsible for ending the processes it started).
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        except OSError as ex:
            if ex.errno == errno.EINTR:
                continue
            break
        if pid == 0:
            break
    if status is None:
        return 1
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
