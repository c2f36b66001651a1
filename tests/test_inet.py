"""Sockets crest refuses to dump, and a real server it keeps serving.

  test_dump_refused[KIND]
      A python3 target holds a socket crest cannot save yet, at a known fd:
        established   a TCP connection to itself (the client end at fd 60)
        backlog       a TCP listener (fd 59) with a connection not yet accepted
        udp_queue     a UDP socket (fd 60) with a datagram waiting to be read
        netlink_queue a NETLINK_ROUTE socket (fd 60) with the replies to RTM_GETLINK unread
        packet        an AF_PACKET socket (fd 60)
      The dump must fail with one line on stderr that names the pid, the fd and what the
      socket is, write no inventory, and leave the target exactly as it was (threads, stops,
      signals, mappings, fds); the target goes on running, and what was queued is still there
      for it to read, byte for byte (the dump consumed nothing).
  test_http_server
      `python3 -m http.server` on a loopback port answers, is dumped (and killed), restored
      with -d, and answers again on the same port.

How these were seen to fail (then put back): a copy of crest whose inet dump accepted every
TCP state (the established dump succeeded and killed the target), one whose UDP check also
read the datagram with recv() (the dump was refused, but the target then found its datagram
gone), and one whose inet restore returned a /dev/null descriptor (the http server did not
answer after restore).
"""

import os
import re
import signal
import socket
import time
import urllib.request

import pytest

from casehelpers import PYTHON, one_line_error, read_text as output
from crestlib import WAIT, proc_stat, tree_changes, tree_details

# The target: sets up the socket of the kind given, says "ready", then every 50 ms checks what
# it holds is still as it was ("tick N ok") until SIGTERM, when it reads its queue and says
# "drained N" with the number of bytes that were waiting ("lost" if they were not).
TARGET = r"""
import os, signal, socket, struct, sys, time
out = open(sys.argv[1], "a", buffering=1)
kind = sys.argv[2]
keep = []

def at(sock, fd):
    # the socket at fd only: the dump must meet it there first
    os.dup2(sock.fileno(), fd)
    sock.close()
    keep.append(socket.socket(fileno=fd))
    return keep[-1]

def tcp_pair(accept):
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    cli = socket.create_connection(lst.getsockname())
    srv = lst.accept()[0] if accept else None
    return lst, cli, srv

queued = 0
if kind == "established":
    lst, cli, srv = tcp_pair(True)
    cli, srv = at(cli, 60), at(srv, 61)
    lst.close()
    out.write("addr %s:%d\n" % cli.getsockname())
elif kind == "backlog":
    lst, cli, _ = tcp_pair(False)
    lst = at(lst, 59)
    at(cli, 70)
    out.write("addr %s:%d\n" % lst.getsockname())
elif kind == "udp_queue":
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"queued datagram", u.getsockname())
    queued = 15
    u = at(u, 60)
    out.write("addr %s:%d\n" % u.getsockname())
elif kind == "netlink_queue":
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    nl.bind((0, 0))
    # RTM_GETLINK (18), NLM_F_REQUEST | NLM_F_DUMP, and a struct ifinfomsg
    nl.send(struct.pack("=LHHLL", 32, 18, 0x301, 1, 0) + bytes(16))
    time.sleep(0.1)
    nl = at(nl, 60)
elif kind == "packet":
    at(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0), 60)

def drain(sig, frame):
    if kind == "udp_queue":
        data = socket.socket(fileno=os.dup(60)).recv(100, socket.MSG_DONTWAIT)
        out.write("drained %d\n" % len(data) if data == b"queued datagram" else "lost\n")
    elif kind == "netlink_queue":
        s = socket.socket(fileno=os.dup(60))
        s.setblocking(False)
        n = 0
        try:
            while True:
                n += len(s.recv(65536))
        except BlockingIOError:
            pass
        out.write("drained %d\n" % n if n else "lost\n")
    elif kind == "backlog":
        c = socket.socket(fileno=os.dup(59)).accept()[0]
        out.write("drained 1\n" if c else "lost\n")
    sys.exit(0)

signal.signal(signal.SIGTERM, drain)
out.write("ready\n")
n = 0
while True:
    n += 1
    if kind == "established":
        cli.send(b"x")
        ok = srv.recv(1) == b"x"
    else:
        ok = True
    out.write("tick %d %s\n" % (n, "ok" if ok else "BROKEN"))
    time.sleep(0.05)
"""

# kind: (fd named in the error, words the error must contain)
REFUSED = {
    "established": (60, ["TCP", "ESTABLISHED"]),
    "backlog": (59, ["TCP", "not yet accepted"]),
    "udp_queue": (60, ["UDP", "datagrams waiting"]),
    "netlink_queue": (60, ["NETLINK_ROUTE", "cannot checkpoint it yet"]),
    "packet": (60, ["AF_PACKET", "SOCK_RAW"]),
}


def wait_for(path, pattern, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, output(path), re.M)
        if m:
            return m
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: no {pattern!r} in {path} after {timeout} s:\n{output(path)}")
        time.sleep(0.02)


def ticks(path):
    return [int(n) for n in re.findall(r"^tick (\d+) ok$", output(path), re.M)]


@pytest.mark.parametrize("kind", list(REFUSED))
def test_dump_refused(tree, kind):
    out = tree.workdir / "target.out"
    root = tree.start([PYTHON, "-c", TARGET, str(out), kind], out)
    wait_for(out, r"^ready$", f"the {kind} target")
    addr = re.search(r"^addr (\S+)$", output(out), re.M)
    snap = tree.snapshot()
    before = tree_details(snap)
    img = tree.workdir / "img"

    call = tree.crest("dump", "-t", root, "-D", img, log=False)
    fd, words = REFUSED[kind]
    line = one_line_error(call, f"pid {root} ", f"fd {fd}:", *words,
                          *([addr.group(1)] if addr else []), whole=False)
    changed = tree_changes(before)
    assert not changed, f"the refused dump changed the target ({line}):\n" + "\n".join(changed)
    assert not (img / "inventory.img").exists(), "a refused dump wrote an inventory"

    # it keeps running, its sockets untouched
    last = max(ticks(out), default=0)
    deadline = time.monotonic() + WAIT
    while max(ticks(out), default=0) < last + 5:
        assert "BROKEN" not in output(out), f"the connection broke after the dump:\n{output(out)}"
        assert proc_stat(root) is not None, f"the target died after the refused dump:\n{output(out)}"
        assert time.monotonic() < deadline, f"the target stopped ticking:\n{output(out)}"
        time.sleep(0.02)
    os.kill(root, signal.SIGTERM)
    rc = tree.popen.wait(timeout=WAIT)
    assert rc == 0, f"the target exited {rc}:\n{output(out)}"
    if kind in ("udp_queue", "netlink_queue", "backlog"):
        assert re.search(r"^drained [1-9]\d*$", output(out), re.M), \
            f"what was queued before the dump is gone:\n{output(out)}"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port, name):
    url = f"http://127.0.0.1:{port}/{name}"
    deadline = time.monotonic() + WAIT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read()
        except OSError as e:
            if time.monotonic() > deadline:
                pytest.fail(f"GET {url}: {e}")
            time.sleep(0.05)


def test_http_server(tree):
    root_dir = tree.workdir / "www"
    root_dir.mkdir()
    (root_dir / "hello.txt").write_text("hello from before the dump\n")
    port = free_port()
    cmd = [PYTHON, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root_dir),
           str(port)]
    tree.start(cmd, tree.workdir / "http.log")
    assert fetch(port, "hello.txt") == b"hello from before the dump\n"
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    (root_dir / "after.txt").write_text("served after restore\n")
    pidfile = tree.workdir / "restore.pid"
    tree.crest_ok("restore", "-D", img, "-d", "--pidfile", pidfile)
    try:
        assert fetch(port, "hello.txt") == b"hello from before the dump\n"
        assert fetch(port, "after.txt") == b"served after restore\n"
    finally:
        for pid in snap:
            if proc_stat(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        tree.wait_gone(list(snap))
