"""What crest refuses, and that refusing harms nothing.

- A process in a network namespace of its own cannot be dumped yet: one error line naming the
  pid and the namespace, the process runs on, and the image directory is left incomplete.
- A restore whose --pidfile cannot be written takes the restored tree back: nobody could find
  it, so nothing may be left running.
- A process whose root directory (chroot) was deleted cannot be dumped: its root has no name.
"""
import functools
import os
import signal
import subprocess
from pathlib import Path

import pytest

import casehelpers
from casehelpers import alive

ROOT = Path(__file__).resolve().parent.parent
CASE = str(ROOT / "build" / "tests" / "cases" / "sighandlers")

# crest and waits with the bounds of this module: 30 s for crest, 5 s for a wait
crest = functools.partial(casehelpers.run_crest, timeout=30)
wait_for = functools.partial(casehelpers.wait_for, timeout=5.0)


def ns_inode(pid, kind):
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def test_dump_refuses_own_namespace(tmp_path):
    proc = subprocess.Popen(["unshare", "--net", "sleep", "30"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for(lambda: ns_inode(proc.pid, "net") != ns_inode("self", "net"),
                 "the process to enter its net namespace")
        res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0
        assert len(lines) == 1, f"want one error line, got: {res.stderr!r}"
        assert str(proc.pid) in lines[0] and "net namespace" in lines[0]
        assert proc.poll() is None, "the refused process did not survive the dump"
        assert not (tmp_path / "img" / "inventory.img").exists()
    finally:
        proc.kill()
        proc.wait()


def test_restore_pidfile_failure_kills_tree(tmp_path):
    out = tmp_path / "out"
    with open(out, "ab") as f:
        proc = subprocess.Popen([CASE, str(out)], stdin=subprocess.DEVNULL, stdout=f,
                                stderr=f, start_new_session=True)
    wait_for(lambda: "ready" in out.read_text(), "the case to be ready")
    res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
    assert res.returncode == 0, res.stderr
    proc.wait(timeout=10)
    res = crest("restore", "-D", tmp_path / "img", "-d", "--pidfile", tmp_path / "no" / "pid")
    try:
        assert res.returncode != 0
        assert "pidfile" in res.stderr
        wait_for(lambda: not alive(proc.pid), "the restored tree to be killed")
    finally:
        if alive(proc.pid):
            os.kill(proc.pid, signal.SIGKILL)


def test_dump_refuses_locks_without_file_locks(tmp_path):
    """As CRIU: a process holding file locks is dumped only with --file-locks."""
    out = tmp_path / "out"
    with open(out, "ab") as f:
        proc = subprocess.Popen([str(ROOT / "build" / "tests" / "cases" / "flock"), str(out)],
                                stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                start_new_session=True)
    try:
        wait_for(lambda: "ready" in out.read_text(), "the flock case to be ready")
        res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0
        assert len(lines) == 1 and "--file-locks" in lines[0] and str(proc.pid) in lines[0], \
            res.stderr
        assert not (tmp_path / "img" / "inventory.img").exists()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


SHARED_TABLES = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static char stacks[2][65536];
static int flag;
static volatile int unshared;
static int child(void *arg)
{
	if (arg)
		setsid();
	for (;;) pause();
	return 0;
}
static void *thread(void *arg) { unshare(flag); unshared = 1; for (;;) pause(); return NULL; }
int main(int argc, char **argv)
{
	pthread_t t;

	flag = atoi(argv[1]);
	if (!strcmp(argv[2], "sessions")) {
		/*
		 * Two children share the table their parent then leaves, and the first leads a
		 * session of its own: neither the parent nor it can clone the second at restore.
		 */
		for (int i = 0; i < 2; i++)
			clone(child, stacks[i] + sizeof(stacks[i]), flag | SIGCHLD, i ? NULL : "");
		unshare(flag);
	} else {
		pthread_create(&t, NULL, thread, NULL);
		while (!unshared)
			usleep(1000);
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) pause();
}
"""


@pytest.fixture(scope="module")
def shared_tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("shared")
    src, exe = d / "shared.c", d / "shared"
    src.write_text(SHARED_TABLES)
    subprocess.run(["gcc", "-o", str(exe), str(src), "-lpthread"], check=True)
    return exe


@pytest.mark.parametrize("flag,words", [(0x400, "CLONE_FILES"), (0x200, "CLONE_FS")])
@pytest.mark.parametrize("shape", ["sessions", "thread"])
def test_dump_refuses_unrestorable_sharing(tmp_path, shared_tables, flag, words, shape):
    """Sharing that clone3 cannot rebuild: two siblings in different sessions sharing an fd
    table (fs) that their parent no longer has, or a thread that unshared its own. The dump
    refuses it, one line naming the pids, and everything runs on."""
    proc = subprocess.Popen([str(shared_tables), str(flag), shape], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        if shape == "sessions":
            wait_for(lambda: len(open(f"/proc/{proc.pid}/task/{proc.pid}/children").read()
                                 .split()) == 2, "the children to exist")
            others = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
            wait_for(lambda: any(os.getsid(int(p)) == int(p) for p in others),
                     "the first child to lead its own session")
        else:
            others = [t for t in os.listdir(f"/proc/{proc.pid}/task") if t != str(proc.pid)]
        res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0
        assert len(lines) == 1 and words in lines[0], res.stderr
        assert all(p in lines[0] for p in others) and str(proc.pid) in lines[0], res.stderr
        assert alive(proc.pid) and all(alive(int(p)) for p in others)
        assert not (tmp_path / "img" / "inventory.img").exists()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


MQUEUE = r"""
import ctypes, os, signal, sys, time
rt = ctypes.CDLL("librt.so.1", use_errno=True)
name = b"/crest-test-%d" % os.getpid()
fd = rt.mq_open(name, os.O_RDWR | os.O_CREAT, 0o600, None)
if fd < 0:
    sys.exit("mq_open failed: %d" % ctypes.get_errno())
rt.mq_unlink(name)
print("ready", flush=True)
signal.pause()
"""


def test_dump_refuses_posix_mqueue(tmp_path):
    """A POSIX message queue in crest's own ipc namespace (the host's, shared with everybody)
    is refused; queues of a tree's own ipc namespace are saved (tests/cases/posix_mq.c)."""
    out = tmp_path / "out"
    with open(out, "ab") as f:
        proc = subprocess.Popen(["/usr/bin/python3", "-c", MQUEUE], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=f, start_new_session=True)
    try:
        wait_for(lambda: "ready" in out.read_text(), "the queue to be open")
        res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0
        assert len(lines) == 1 and str(proc.pid) in lines[0] and "crest-test" in lines[0] \
            and "message queue" in lines[0] and "ipc namespace" in lines[0], res.stderr
        assert proc.poll() is None, "the refused process did not survive the dump"
    finally:
        proc.kill()
        proc.wait()


def test_dump_refuses_deleted_root(tmp_path):
    """A chroot into a directory deleted since cannot be named: refused, naming the pid."""
    root = tmp_path / "gone"
    root.mkdir()
    proc = subprocess.Popen(
        ["/usr/bin/python3", "-c", "import os, sys, time\nos.chroot(sys.argv[1])\n"
         "print('ready', flush=True)\ntime.sleep(30)", str(root)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        root.rmdir()
        res = crest("dump", "-t", proc.pid, "-D", tmp_path / "img")
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1, res.stderr
        assert f"pid {proc.pid}" in lines[0] and "root directory" in lines[0], lines[0]
        assert proc.poll() is None, "the refused process did not survive the dump"
        assert not (tmp_path / "img" / "inventory.img").exists()
    finally:
        proc.kill()
        proc.wait()
