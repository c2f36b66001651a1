"""crest dump --tcp-close: TCP connections saved as closed.

A python3 target holds a loopback connection to itself (client and accepted server end)
and a listener, and sends a byte over the connection every 20 ms.
  test_tcp_close[v4, v6]
      over IPv4 or IPv6 loopback, dumped with --tcp-close (killed) and restored: both ends are connections reset by
      their peer (the first call fails with ECONNRESET, then reads see end of file and
      writes fail with EPIPE), at the same fd numbers, with TCP_NODELAY and the local
      address kept; the target goes on, and the listener accepts a new connection.
  test_tcp_close_leave_running
      dumped with --tcp-close and -R: the live connection is untouched and keeps working.
Without --tcp-close such a dump is refused (tests/test_inet.py, "established").
"""

import re
import socket
import time

import pytest

from casehelpers import PYTHON, WAIT, kill_tree, read_text

TARGET = r"""
import errno, os, socket, sys, time
out = open(sys.argv[1], "a", buffering=1)
family, loop = (socket.AF_INET6, "::1") if sys.argv[2] == "v6" else (socket.AF_INET, "127.0.0.1")
lst = socket.socket(family)
lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind((loop, 0))
lst.listen(4)
cli = socket.create_connection(lst.getsockname()[:2])
srv, _ = lst.accept()
cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
fds = (cli.fileno(), srv.fileno())
print("ready", *fds, flush=True, file=out)

def call(f):
    try:
        r = f()
        return "eof" if r == b"" else "ok"
    except OSError as e:
        return errno.errorcode[e.errno]

n = 0
while True:
    n += 1
    try:
        cli.sendall(b"x")
        assert srv.recv(1) == b"x"
    except OSError as e:
        print("closed", errno.errorcode[e.errno], file=out)
        break
    print("tick", n, file=out)
    time.sleep(0.02)
# cli got its error above; srv's first call, then reads and writes of both
print("after", call(lambda: srv.recv(1)), call(lambda: srv.recv(1)), call(lambda: cli.recv(1)),
      call(lambda: cli.send(b"y")), call(lambda: srv.send(b"y")), file=out)
print("fds", cli.fileno(), srv.fileno(), "nodelay", cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
      "local", cli.getsockname()[0], file=out)
c2 = socket.create_connection(lst.getsockname()[:2], timeout=5)
s2, _ = lst.accept()
c2.sendall(b"z")
print("new", s2.recv(1).decode(), file=out)
while True:
    time.sleep(1)
"""


def wait_for(path, pattern, what):
    deadline = time.monotonic() + WAIT
    while not re.search(pattern, read_text(path), re.M):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: no {pattern!r} after {WAIT} s:\n{read_text(path)}")
        time.sleep(0.02)
    return re.search(pattern, read_text(path), re.M)


def ticks(path):
    return len(re.findall(r"^tick \d+$", read_text(path), re.M))


def start(tree, family="v4"):
    out = tree.workdir / "target.out"
    tree.start([PYTHON, "-c", TARGET, str(out), family], tree.workdir / "target.log")
    ready = wait_for(out, r"^ready (\d+) (\d+)$", "the target")
    wait_for(out, r"^tick 5$", "the target's connection")
    return out, ready.group(1), ready.group(2)


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_tcp_close(tree, family):
    if family == "v6" and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    out, cli_fd, srv_fd = start(tree, family)
    snap = tree.snapshot()
    tree.dump(tree.workdir / "img", "--tcp-close")
    tree.expect_original_killed(snap)
    tree.crest_ok("restore", "-D", tree.workdir / "img", "-d")
    try:
        wait_for(out, r"^new ", "the restored target")
        text = read_text(out)
        assert "closed ECONNRESET" in text, text
        assert "after ECONNRESET eof eof EPIPE EPIPE" in text, text
        local = "::1" if family == "v6" else "127.0.0.1"
        assert f"fds {cli_fd} {srv_fd} nodelay 1 local {local}\n" in text, text
        assert "new z" in text, text
    finally:
        kill_tree(tree, snap)


def test_tcp_close_leave_running(tree):
    out, _, _ = start(tree)
    snap = tree.snapshot()
    tree.dump(tree.workdir / "img", "--tcp-close", "-R")
    seen = ticks(out)
    deadline = time.monotonic() + WAIT
    while ticks(out) < seen + 5:
        assert "closed" not in read_text(out), f"the dump broke the live connection:\n{read_text(out)}"
        assert time.monotonic() < deadline, f"the target stopped ticking:\n{read_text(out)}"
        time.sleep(0.02)
    kill_tree(tree, snap)
