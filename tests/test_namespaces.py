"""Namespaces: a tree started by `crest run` in uts, ipc and time namespaces of its own is
dumped and restored into new ones, with its hostname and with clocks that go on from where
they stood; what crest cannot save yet is refused with one line, leaving the tree running.

- uts/ipc/time round trip: after the restore the process is in namespaces other than the
  host's, its hostname is the one it had, and CLOCK_MONOTONIC and CLOCK_BOOTTIME inside never
  went backwards; nor did they jump by the time the tree spent in the image (which they would
  if the restore did not set the new namespace's offsets).
- A pid namespace below a root that is not its init, and a child in another uts namespace
  than its root are refused at dump, naming the pid. (The objects of the tree's ipc namespace
  are saved: tests/test_ipc.py.)
- `crest run` makes a pid namespace unless --no-pidns (pid namespaces: test_pidns.py).
"""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from crestlib import descendants, proc_stat, reap_zombies
from casehelpers import build_c, wait_for

HOSTNAME = "crest-ns-test"
DOWNTIME = 2.0  # seconds between the dump and the restore

# Reads both clocks every 5 ms, keeping the largest step between two readings and whether one
# went backwards, and writes the latest readings (fixed width) to STATEFILE. On SIGTERM it
# reports, and checks that its hostname is still the one it started with.
CLOCK_C = r"""
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

static volatile sig_atomic_t term;
static void on_term(int sig) { (void)sig; term = 1; }

static void say(const char *s) { write(1, s, strlen(s)); }

static int64_t clock_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_term };
	char host[128] = "", host2[128] = "", buf[256];
	int64_t m0 = clock_ns(CLOCK_MONOTONIC), b0 = clock_ns(CLOCK_BOOTTIME);
	int64_t jm = 0, jb = 0, back = 0;
	int fd;

	if (argc != 2)
		return 2;
	fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	sigaction(SIGTERM, &sa, NULL);
	gethostname(host, sizeof(host) - 1);
	snprintf(buf, sizeof(buf), "hostname %s\nready\n", host);
	say(buf);
	while (!term) {
		struct timespec nap = { 0, 5000000 };
		int64_t m, b;

		nanosleep(&nap, NULL);
		m = clock_ns(CLOCK_MONOTONIC);
		b = clock_ns(CLOCK_BOOTTIME);
		back += m < m0 || b < b0;
		jm = m - m0 > jm ? m - m0 : jm;
		jb = b - b0 > jb ? b - b0 : jb;
		m0 = m;
		b0 = b;
		snprintf(buf, sizeof(buf), "%020lld %020lld\n", (long long)m, (long long)b);
		pwrite(fd, buf, strlen(buf), 0);
	}
	gethostname(host2, sizeof(host2) - 1);
	snprintf(buf, sizeof(buf), "jump %lld %lld\n", (long long)jm, (long long)jb);
	say(buf);
	if (back) {
		snprintf(buf, sizeof(buf), "FAIL: a clock went backwards %lld times\n", (long long)back);
		say(buf);
	}
	if (strcmp(host, host2)) {
		snprintf(buf, sizeof(buf), "FAIL: hostname %s, was %s\n", host2, host);
		say(buf);
	}
	if (!back && !strcmp(host, host2))
		say("PASS\n");
	return back || strcmp(host, host2);
}
"""


@pytest.fixture(scope="module")
def clockprog(tmp_path_factory):
    return build_c(tmp_path_factory, "nsclock", CLOCK_C)


def ns_inode(pid, kind):
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def hostname_in(pid):
    res = subprocess.run(["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True,
                         text=True, timeout=10)
    assert res.returncode == 0, f"nsenter into pid {pid}: {res.stderr}"
    return res.stdout.strip()



def read_state(path):
    """The clock program's last (monotonic, boottime) readings, in ns."""
    for _ in range(100):
        fields = path.read_text().split()
        if len(fields) == 2 and all(len(f) == 20 for f in fields):
            return int(fields[0]), int(fields[1])
        time.sleep(0.01)  # caught half-written
    pytest.fail(f"{path}: not the clock program's state: {path.read_text()!r}")


def crest_run(tree, *args):
    call = tree.crest_ok("run", *args, log=False)
    pid = int(call.stdout.strip())
    tree.root = pid
    tree.known.add(pid)
    return pid


def expect_own_namespaces(pid, when):
    for kind in ("uts", "ipc", "time"):
        assert ns_inode(pid, kind) != ns_inode("self", kind), \
            f"{when}: pid {pid} is in the host's {kind} namespace"
    assert hostname_in(pid) == HOSTNAME, f"{when}: pid {pid} has the wrong hostname"


def one_error_line(call):
    assert call.rc not in (0, None), f"crest {call.args[0]} succeeded: want a refusal"
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one error line, got:\n{call.stderr}"
    return lines[0]


def test_uts_ipc_time_roundtrip(tree, clockprog):
    out, state, img = tree.workdir / "clock.out", tree.workdir / "clock.state", tree.workdir / "img"
    tree.outfile = out
    tree.exes.add(str(clockprog))
    # --no-pidns: the tree keeps its host pid, which the snapshot checks after the restore.
    pid = crest_run(tree, "--no-pidns", "--timens", "--hostname", HOSTNAME, "-O", out, "-E", out,
                    "--", clockprog, state)
    wait_for(lambda: "ready" in tree.output().splitlines(), "the clock program to be ready")
    assert proc_stat(pid)[3] == pid, "crest run did not make the command a session leader"
    expect_own_namespaces(pid, "before the dump")
    time.sleep(0.2)  # some readings in the state file

    snap = tree.snapshot()
    tree.dump(img)
    tree.wait_gone(list(snap))
    reap_zombies()
    before = read_state(state)
    rec = json.loads(tree.crest_ok("show", img / "ns.img", log=False).stdout)[0]
    assert rec.get("uts") and rec.get("ipc") and rec.get("time"), f"ns.img: {rec}"
    assert rec.get("hostname") == HOSTNAME, f"ns.img: {rec}"
    assert int(rec["monotonic"]) >= before[0], f"ns.img: {rec}; last reading {before}"

    time.sleep(DOWNTIME)
    t0 = time.monotonic()
    tree.crest_ok("restore", "-D", img, "-d")
    restore_s = time.monotonic() - t0
    tree.wait_restored(snap)
    expect_own_namespaces(pid, "after the restore")
    wait_for(lambda: read_state(state) != before, "a clock reading after the restore")
    after = read_state(state)
    assert after[0] >= before[0] and after[1] >= before[1], \
        f"clocks went backwards across the restore: {before} -> {after}"

    mark = tree.terminate()
    assert tree.wait_adopted(pid) in (0, None)
    tree.expect_pass(mark)
    jump = re.search(r"^jump (\d+) (\d+)$", tree.output()[mark:], re.M)
    assert jump, f"no jump line:\n{tree.output()[mark:]}"
    # The tree spent DOWNTIME s in the image; its clocks go on from the dump: the largest step
    # it saw is the restore itself, not the downtime.
    bound = (restore_s + DOWNTIME / 2) * 1e9
    for name, ns in zip(("CLOCK_MONOTONIC", "CLOCK_BOOTTIME"), map(int, jump.groups())):
        assert ns < bound, f"{name} jumped {ns / 1e9:.3f} s across a restore of " \
            f"{restore_s:.3f} s after {DOWNTIME} s in the image"


def test_nested_uts_refused(tree):
    """A child in another uts namespace than its root's: crest would restore one only."""
    out, img = tree.workdir / "nested.out", tree.workdir / "img"
    tree.outfile = out
    pid = crest_run(tree, "-O", out, "-E", out, "--", "sh", "-c",
                    "unshare --uts sleep 60 & wait")

    def child_moved():
        return any(p != pid and (proc_stat(p) or "Z")[0] not in "ZX"
                   and ns_inode(p, "uts") != ns_inode(pid, "uts") for p in descendants(pid))
    wait_for(child_moved, "the child to enter its uts namespace")
    line = one_error_line(tree.crest("dump", "-t", pid, "-D", img, log=False))
    assert "uts namespace" in line and f"root (pid {pid})" in line, line
    assert not (img / "inventory.img").exists()


def test_pid_namespace_refused(tree):
    img = tree.workdir / "img"
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "60"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    tree.root = proc.pid
    try:
        wait_for(lambda: len(descendants(proc.pid)) > 1, "unshare to fork")
        line = one_error_line(tree.crest("dump", "-t", proc.pid, "-D", img, log=False))
        assert str(proc.pid) in line and "pid namespace" in line, line
        assert proc.poll() is None, "the refused tree did not survive the dump"
        assert not (img / "inventory.img").exists()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def nspid(pid):
    with open(f"/proc/{pid}/status") as f:
        return [int(x) for l in f if l.startswith("NSpid:") for x in l.split()[1:]]


def test_run_pidns_default(tree):
    """CMD is pid 1 of a new pid namespace unless --no-pidns; run prints the host pid."""
    for opts, want in (([], [1]), (["--pidns"], [1]), (["--no-pidns"], [])):
        pid = crest_run(tree, *opts, "--", "sleep", "60")
        assert nspid(pid) == [pid] + want, f"crest run {opts}: NSpid of {pid} is {nspid(pid)}"
        os.kill(pid, signal.SIGKILL)
        tree.wait_adopted(pid)


def test_run_errors(tree):
    line = one_error_line(tree.crest("run", "--", "/nonexistent/command", log=False))
    assert "/nonexistent/command" in line and "No such file" in line, line
    line = one_error_line(tree.crest("run", log=False))
    assert "command" in line, line


def test_run_help(tree):
    call = tree.crest("--help", log=False)
    assert call.rc == 0 and re.search(r"^\s+run\s", call.stdout, re.M), call.stdout
    call = tree.crest("run", "--help", log=False)
    assert call.rc == 0 and "--timens" in call.stdout, call.stdout
