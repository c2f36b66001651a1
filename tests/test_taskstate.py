"""Task state at the edges of a dump.

- A signal sent to the tree while it is frozen for a dump is delivered exactly once: after
  the release with --leave-running, or after the restore when the dump killed the tree (it
  was pending, so it is in the image). crest is stopped (SIGSTOP) right after the freeze,
  so the signal surely arrives while the tree is frozen, before any remote call runs.
- A process whose thread-group leader exited (pthread_exit in main) while its other threads
  run on is refused with one line naming it, as the root and inside a tree, and left running.
"""
import os
import signal
import time

import pytest

from crestlib import descendants, proc_stat, reap_zombies
from casehelpers import build_c, wait_for

# argv[1]: the output file. Counts SIGUSR1; "ready" once its memory (which makes the dump
# take a moment) is filled; on SIGTERM prints the count and PASS for exactly one.
SIGNAL_C = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, term;
static void on_usr1(int sig) { (void)sig; usr1++; }
static void on_term(int sig) { (void)sig; term = 1; }

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	size_t len = 32 << 20;
	char *mem = malloc(len), buf[64];

	memset(mem, 1, len);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	write(1, "ready\n", 6);
	while (!term)
		usleep(10000);
	snprintf(buf, sizeof(buf), "usr1 %d\n%s\n", (int)usr1, usr1 == 1 ? "PASS" : "FAIL");
	write(1, buf, strlen(buf));
	return usr1 != 1;
}
"""

# Leaves main with pthread_exit while a thread (and, with an argument, a child) runs on.
LEADER_C = r"""
#include <pthread.h>
#include <unistd.h>

static void *spin(void *arg) { (void)arg; for (;;) pause(); return NULL; }

int main(void)
{
	pthread_t th;

	pthread_create(&th, NULL, spin, NULL);
	write(1, "ready\n", 6);
	pthread_exit(NULL);
}
"""


def build(tmp_path_factory, name, src):
    return build_c(tmp_path_factory, name, src, "-pthread")


@pytest.fixture(scope="module")
def sigprog(tmp_path_factory):
    return build(tmp_path_factory, "frozensig", SIGNAL_C)


@pytest.fixture(scope="module")
def leaderprog(tmp_path_factory):
    return build(tmp_path_factory, "leaderexit", LEADER_C)



def tracer_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("TracerPid:"))
    except FileNotFoundError:
        return 0


def start(tree, prog):
    out = tree.workdir / "out"
    tree.outfile = out
    tree.start([str(prog)], out)
    wait_for(lambda: "ready" in tree.output().splitlines(), "the program to be ready")
    return tree.root


def signal_while_frozen(tree, img, *extra):
    """Runs a dump, stops crest once the tree is frozen, sends SIGUSR1, lets crest go on."""
    root = tree.root
    bg = tree.crest_bg("dump", "-t", root, "-D", img, *extra)
    try:
        wait_for(lambda: tracer_of(root) == bg.pid or bg.poll() is not None, "the freeze")
        assert bg.poll() is None, "the dump ended before the tree was seen frozen"
        os.kill(bg.pid, signal.SIGSTOP)
        os.kill(root, signal.SIGUSR1)
        time.sleep(0.05)
        assert tracer_of(root) == bg.pid, "the tree was not frozen when the signal came"
    finally:
        os.kill(bg.pid, signal.SIGCONT)
    assert tree.finish_bg(bg) == 0, bg.call.stderr


@pytest.mark.parametrize("mode", ["leave_running", "restore"])
def test_signal_during_freeze_delivered_once(tree, sigprog, mode):
    root = start(tree, sigprog)
    img = tree.workdir / "img"
    if mode == "leave_running":
        signal_while_frozen(tree, img, "-R")
    else:
        snap = tree.snapshot()
        signal_while_frozen(tree, img)
        tree.expect_original_killed(snap)
        tree.crest_ok("restore", "-D", img, "-d")
        tree.wait_restored(snap)
    mark = tree.terminate()
    if mode == "leave_running":
        assert tree.popen.wait(timeout=10) == 0, tree.output()[mark:]
    else:
        assert tree.wait_adopted(root) in (0, None)
    tree.expect_pass(mark, "the signal count")


def test_exited_leader_refused(tree, leaderprog):
    img = tree.workdir / "img"
    root = start(tree, leaderprog)
    wait_for(lambda: (proc_stat(root) or "Z")[0] == "Z", "main to exit")
    call = tree.crest("dump", "-t", root, "-D", img, log=False)
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert call.rc != 0 and len(lines) == 1, call.stderr
    assert f"pid {root}" in lines[0] and "pthread_exit" in lines[0], lines[0]
    assert len(os.listdir(f"/proc/{root}/task")) == 2, "the refused process lost a thread"
    assert not (img / "inventory.img").exists()


def test_exited_leader_in_tree_refused(tree, leaderprog):
    """Not the root: saving it as a zombie would silently lose its running thread."""
    img = tree.workdir / "img"
    out = tree.workdir / "out"
    tree.outfile = out
    tree.exes.add(str(leaderprog))
    root = tree.start(["sh", "-c", f"{leaderprog} & wait"], out)
    wait_for(lambda: "ready" in tree.output().splitlines(), "the program to be ready")
    child = [p for p in descendants(root) if p != root]
    wait_for(lambda: child and (proc_stat(child[0]) or "Z")[0] == "Z", "main to exit")
    call = tree.crest("dump", "-t", root, "-D", img, log=False)
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert call.rc != 0 and len(lines) == 1, call.stderr
    assert f"pid {child[0]}" in lines[0] and "pthread_exit" in lines[0], lines[0]
    assert not (img / "inventory.img").exists()
    reap_zombies()
