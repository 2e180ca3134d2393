#!/usr/bin/env python3
"""ptyrun.py [--rows R --cols C] [--input TEXT] [--expect TEXT] [--timeout S] -- CMD...

Runs CMD on a fresh pseudo-terminal of the given size (as a person at a
terminal would), optionally types TEXT once EXPECT has appeared (or at once),
prints everything the terminal showed, and exits with CMD's exit status
(124 on timeout).
"""
import argparse
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--input", default=None)
    ap.add_argument("--expect", default=None)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", a.rows, a.cols, 0, 0))
    out = b""
    sent = a.input is None
    deadline = time.time() + a.timeout
    status = None
    while True:
        if not sent and (a.expect is None or a.expect.encode() in out):
            # type a character at a time, like a person
            for ch in a.input.encode():
                os.write(fd, bytes([ch]))
                time.sleep(0.01)
            sent = True
        left = deadline - time.time()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], min(left, 0.2))
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                break
            out += data
        else:
            wp, st = os.waitpid(pid, os.WNOHANG)
            if wp == pid:
                status = st
                # drain what is left
                while True:
                    r, _, _ = select.select([fd], [], [], 0.2)
                    if not r:
                        break
                    try:
                        data = os.read(fd, 4096)
                    except OSError:
                        break
                    if not data:
                        break
                    out += data
                break
    sys.stdout.write(out.decode("utf-8", "replace"))
    sys.stdout.flush()
    if status is None:
        end = time.time() + 5
        while time.time() < end:
            wp, st = os.waitpid(pid, os.WNOHANG)
            if wp == pid:
                status = st
                break
            time.sleep(0.05)
    if status is None:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except OSError:
            pass
        sys.exit(124)
    if os.WIFEXITED(status):
        sys.exit(os.WEXITSTATUS(status))
    sys.exit(128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main()
