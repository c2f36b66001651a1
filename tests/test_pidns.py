"""Pid namespaces: a tree whose root is pid 1 of its own pid namespace (started by `crest run`)
is restored into a new pid namespace with every pid inside as before, while the host pids
are new; the original keeps running beside its copies, so every inner pid is also taken on
the host at restore time. What crest cannot restore is refused with one line at dump.

- The program checks itself: each process compares getpid(), getppid(), its group and session
  (and a thread its gettid()) with what it saw at start, and the root, pid 1, reaps a zombie
  child with the status it exited with.
- The driver checks NSpid in /proc for every process and thread: the same inner pids after
  the restore, the root 1, the pidfile the root's host pid.
- Refused: a nested pid namespace inside the tree, a root that is not pid 1 of its namespace,
  and a process that entered the tree's namespace by setns (no descendant of the root).
"""
import os
import subprocess

import pytest

from crestlib import descendants, proc_stat, reap_zombies
from casehelpers import build_c, wait_for

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"),
                                reason="this kernel has no pid namespaces (CONFIG_PID_NS)")

# argv[1]: the output file (also stdout). Root: pid 1 of its namespace, with a child that has
# a second thread and a child of its own, and a zombie child. On SIGTERM (pid 1 ignores
# signals without a handler, so it has one) everyone checks its ids, children first. Pids
# kept in kernel objects: the child owns a socket (F_SETOWN), ends its child through a pidfd,
# and its thread has a POSIX timer signalling that thread (SIGEV_THREAD_ID; the driver
# checks its target in /proc/PID/timers). Root and child share anonymous memory (created at
# restore through /proc/self/map_files, as crest names the restoring process).
PROG_C = r"""
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct ids { pid_t pid, ppid, pgrp, sid; };

static volatile sig_atomic_t term;
static volatile int checking, thread_bad = -1, *shared;
static pid_t thread_tid;

static void on_term(int sig) { (void)sig; term = 1; }

static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	write(1, buf, strlen(buf));
}

static struct ids now(void)
{
	return (struct ids){ getpid(), getppid(), getpgrp(), getsid(0) };
}

static int check(const char *who, struct ids was)
{
	struct ids is = now();

	if (!memcmp(&is, &was, sizeof(is)))
		return 0;
	say("FAIL: %s: pid %d ppid %d pgrp %d sid %d, was %d %d %d %d\n", who, is.pid, is.ppid,
	    is.pgrp, is.sid, was.pid, was.ppid, was.pgrp, was.sid);
	return 1;
}

static void wait_term(void)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigaction(SIGTERM, &sa, NULL);
	while (!term)
		usleep(10000);
}

static void *thread_main(void *arg)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGURG };
	struct itimerspec its = { .it_value = { 3600, 0 } };
	timer_t timer;

	(void)arg;
	sev._sigev_un._tid = syscall(SYS_gettid);
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) || timer_settime(timer, 0, &its, NULL))
		say("FAIL: setup: timer_create\n");
	thread_tid = syscall(SYS_gettid);
	while (!checking)
		usleep(10000);
	thread_bad = syscall(SYS_gettid) != thread_tid;
	return NULL;
}

static int status_of(pid_t pid)
{
	int status = -1;

	return waitpid(pid, &status, 0) == pid ? status : -1;
}

static int grandchild(void)
{
	struct ids was = now();

	wait_term();
	return check("grandchild", was);
}

static int child(int ready)
{
	struct ids was = now();
	pthread_t th;
	pid_t gc = fork();
	int bad = 0, pfd, p[2];

	if (gc == 0)
		_exit(grandchild());
	pfd = syscall(SYS_pidfd_open, gc, 0);
	if (pfd < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, p) || fcntl(p[0], F_SETOWN, getpid()))
		say("FAIL: setup: pidfd or F_SETOWN\n");
	pthread_create(&th, NULL, thread_main, NULL);
	while (!thread_tid)
		usleep(1000);
	write(ready, "r", 1);
	wait_term();
	if (*shared != 7) {
		say("FAIL: child: shared memory reads %d, want 7\n", *shared);
		bad = 1;
	}
	if (fcntl(p[0], F_GETOWN) != was.pid) {
		say("FAIL: child: F_GETOWN %d, want %d\n", fcntl(p[0], F_GETOWN), was.pid);
		bad = 1;
	}
	if (syscall(SYS_pidfd_send_signal, pfd, SIGTERM, NULL, 0)) {
		say("FAIL: child: the pidfd of its child does not signal it\n");
		kill(gc, SIGTERM);
		bad = 1;
	}
	bad |= status_of(gc) != 0;
	checking = 1;
	pthread_join(th, NULL);
	if (thread_bad)
		say("FAIL: thread %d: gettid() changed\n", thread_tid);
	return bad | thread_bad | check("child", was);
}

int main(void)
{
	struct ids was = now();
	int pfd[2], bad = 0, st;
	siginfo_t si;
	pid_t c, z;
	char b;

	if (was.pid != 1)
		say("FAIL: the root is pid %d, not 1\n", was.pid);
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	*shared = 42;
	pipe(pfd);
	c = fork();
	if (c == 0)
		_exit(child(pfd[1]));
	read(pfd[0], &b, 1);
	z = fork();
	if (z == 0)
		_exit(7);
	waitid(P_PID, z, &si, WEXITED | WNOWAIT);	/* a zombie from here on */
	say("ready\n");
	wait_term();
	*shared = 7;
	kill(c, SIGTERM);
	bad |= status_of(c) != 0;
	st = status_of(z);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 7) {
		say("FAIL: zombie %d: status %#x, want exit 7\n", z, st);
		bad = 1;
	}
	bad |= check("root", was) | (was.pid != 1);
	say(bad ? "FAIL\n" : "PASS\n");
	return bad;
}
"""


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    return build_c(tmp_path_factory, "pidns", PROG_C, "-pthread")



def nspid(tid):
    """The NSpid line of tid: its pid in each namespace from crest's down to its own."""
    with open(f"/proc/{tid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    pytest.fail(f"/proc/{tid}/status has no NSpid line")


def inner_view(root):
    """{inner pid: (zombie, inner tids)} of every process of the tree of host pid root."""
    view = {}
    for pid in descendants(root):
        st = proc_stat(pid)
        if st is None:
            continue
        try:
            tids = sorted(nspid(int(t))[-1] for t in os.listdir(f"/proc/{pid}/task"))
        except FileNotFoundError:
            tids = []
        view[nspid(pid)[-1]] = (st[0] == "Z", tids)
    return view


def timer_targets(root):
    """Inner tids that the POSIX timers of the tree of host pid root signal."""
    found = []
    for pid in descendants(root):
        with open(f"/proc/{pid}/timers") as f:
            found += [nspid(int(l.split(".")[-1]))[-1] for l in f if "tid." in l]
    return found


def one_error_line(call):
    assert call.rc not in (0, None), f"crest {call.args[0]} succeeded: want a refusal"
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one error line, got:\n{call.stderr}"
    return lines[0]


def start(tree, prog, out):
    tree.outfile = out
    tree.exes.add(str(prog))
    pid = int(tree.crest_ok("run", "-O", out, "-E", out, "--", prog, log=False).stdout)
    tree.root = pid
    tree.known.add(pid)
    wait_for(lambda: "ready" in tree.output().splitlines(), "the program to be ready")
    assert nspid(pid) == [pid, 1], f"crest run: pid {pid} is not pid 1 of a new namespace"
    return pid


def restore(tree, img, name):
    pidfile = tree.workdir / f"{name}.pid"
    tree.crest_ok("restore", "-D", img, "-d", "--pidfile", pidfile)
    root = int(pidfile.read_text())
    tree.known.add(root)
    tree.known |= set(descendants(root))
    assert nspid(root)[-1] == 1 and len(nspid(root)) == 2, \
        f"pidfile names {root}, whose NSpid is {nspid(root)}: not the root of a new namespace"
    return root


def check_and_end(tree, root, what):
    mark = tree.mark()
    os.kill(root, 15)
    assert tree.wait_adopted(root) == 0, f"{what} failed:\n{tree.output()[mark:]}"
    tree.expect_pass(mark, what)


def test_copy_beside_original(tree, prog):
    """--leave-running dump; two copies restored beside the original: all three run with the
    same pids inside, different host pids, and each passes its own checks."""
    img = tree.workdir / "img"
    orig = start(tree, prog, tree.workdir / "out")
    before, timers = inner_view(orig), timer_targets(orig)
    assert len(before) == 4 and 1 in before, f"unexpected tree: {before}"
    assert len(timers) == 1 and timers[0] != 2, f"unexpected timers: {timers}"
    tree.dump(img, "-R")
    assert inner_view(orig) == before, "the --leave-running dump changed the tree"
    copies = [restore(tree, img, "a"), restore(tree, img, "b")]
    assert orig not in copies and copies[0] != copies[1]
    for root in copies:
        assert inner_view(root) == before, f"copy {root}: {inner_view(root)} != {before}"
        assert timer_targets(root) == timers, f"copy {root}: timers signal {timer_targets(root)}"
    for root in copies + [orig]:
        check_and_end(tree, root, f"the tree of {root}")


def test_dump_kill_restore_twice(tree, prog):
    """A dump that kills the tree (init first of all would hang on its traced children), its
    restore, and a dump and restore of that restored tree."""
    orig = start(tree, prog, tree.workdir / "out")
    before = inner_view(orig)
    tree.dump(tree.workdir / "img1")
    wait_for(lambda: proc_stat(orig) is None or proc_stat(orig)[0] == "Z", "the tree to die")
    reap_zombies()
    first = restore(tree, tree.workdir / "img1", "first")
    assert inner_view(first) == before
    tree.root = first
    tree.dump(tree.workdir / "img2")
    reap_zombies()
    second = restore(tree, tree.workdir / "img2", "second")
    assert inner_view(second) == before
    check_and_end(tree, second, "the tree restored twice")


def test_nested_pidns_refused(tree):
    out, img = tree.workdir / "nested.out", tree.workdir / "img"
    tree.outfile = out
    pid = int(tree.crest_ok("run", "-O", out, "-E", out, "--", "sh", "-c",
                            "unshare --pid --fork sleep 60 & echo ready; wait",
                            log=False).stdout)
    tree.root = pid
    wait_for(lambda: any(len(nspid(p)) > 2 for p in descendants(pid)), "the nested namespace")
    line = one_error_line(tree.crest("dump", "-t", pid, "-D", img, log=False))
    assert "nested" in line and "pid namespace" in line and f"(pid {pid})" in line, line
    assert proc_stat(pid)[0] not in "ZX", "the refused tree did not survive the dump"
    assert not (img / "inventory.img").exists()


def test_root_not_init_refused(tree):
    out, img = tree.workdir / "notinit.out", tree.workdir / "img"
    tree.outfile = out
    pid = int(tree.crest_ok("run", "-O", out, "-E", out, "--", "sh", "-c",
                            "sleep 60 & wait", log=False).stdout)
    tree.root = pid
    wait_for(lambda: len(descendants(pid)) > 1, "sh to fork")
    child = [p for p in descendants(pid) if p != pid][0]
    line = one_error_line(tree.crest("dump", "-t", child, "-D", img, log=False))
    assert f"pid {child}" in line and "not its init" in line, line
    assert not (img / "inventory.img").exists()


def test_setns_process_refused(tree):
    """nsenter's child is in the tree's pid namespace but no descendant of its init."""
    out, img = tree.workdir / "setns.out", tree.workdir / "img"
    tree.outfile = out
    pid = int(tree.crest_ok("run", "-O", out, "-E", out, "--", "sleep", "60",
                            log=False).stdout)
    tree.root = pid
    ent = subprocess.Popen(["nsenter", "-t", str(pid), "--pid", "sleep", "60"],
                           stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(descendants(ent.pid)) > 1, "nsenter to fork")
        line = one_error_line(tree.crest("dump", "-t", pid, "-D", img, log=False))
        assert "setns" in line and f"root {pid}" in line, line
        assert not (img / "inventory.img").exists()
    finally:
        ent.kill()
        ent.wait()


def prog_pids(prog):
    """Host pids of every live process running prog."""
    found = set()
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            if os.readlink(f"/proc/{pid}/exe") == str(prog) and proc_stat(pid)[0] not in "ZX":
                found.add(pid)
        except (OSError, TypeError):
            pass
    return found


@pytest.mark.parametrize("how", ["pidfile", "missing_file"])
def test_failed_restore_leaves_nothing(tree, prog, how):
    """A restore that fails after the tree is created (the pidfile cannot be written), or
    while it is being created (a file it had open is gone), kills the whole new namespace."""
    out, img = tree.workdir / "out", tree.workdir / "img"
    orig = start(tree, prog, out)
    tree.dump(img, "-R")
    before = prog_pids(prog)
    assert orig in before
    if how == "pidfile":
        args = ["--pidfile", tree.workdir / "no" / "pid"]
    else:
        args = []
        os.kill(orig, 9)
        tree.wait_adopted(orig)
        out.unlink()
        before.discard(orig)
    call = tree.crest("restore", "-D", img, "-d", *args, log=False)
    assert call.rc != 0, "the restore succeeded: want a failure"
    assert ("pidfile" if how == "pidfile" else str(out)) in call.stderr, call.stderr
    wait_for(lambda: prog_pids(prog) <= before, "the half-restored namespace to die", 5.0)
    reap_zombies()
