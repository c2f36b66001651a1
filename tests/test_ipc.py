"""IPC: what the case programs sysv_ipc, posix_mq and posix_shm cannot show by themselves.

- A tree started by `crest run` (its own ipc namespace) whose objects were made by the
  util-linux tools (ipcmk) comes back with the same objects: `ipcs` inside gives the same
  keys, ids, owners, modes and sizes.
- Refusals, one line naming the pid and the object, the tree left running and untouched:
  a SysV attach in crest's own ipc namespace (the host's, shared with everybody: a restore
  cannot give it back; test_refusals.py does the same for a POSIX message queue), and a queue
  with an mq_notify registration (its messages must still all be there after the refused
  dump).
"""
import os
import re
import subprocess

import pytest

from crestlib import proc_stat, reap_zombies
from casehelpers import build_c, wait_for

# One helper, two set-ups (argv[1]); prints "ready", waits for SIGTERM, checks, says PASS.
IPC_C = r"""
#define _GNU_SOURCE
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/shm.h>
#include <unistd.h>

static volatile sig_atomic_t term;
static void on_term(int sig) { term = 1; }

int main(int argc, char **argv)
{
	struct mq_attr attr = { .mq_maxmsg = 4, .mq_msgsize = 32 };
	char name[64], buf[32];
	sigset_t set, old;
	mqd_t q = -1;

	signal(SIGTERM, on_term);
	snprintf(name, sizeof(name), "/crest-test-ipc-%d", getpid());
	if (!strcmp(argv[1], "mq-notify")) {
		struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1 };

		signal(SIGUSR1, SIG_IGN);
		if (unshare(CLONE_NEWIPC))
			return 2;
		q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
		/* registered after the first message: the second, to a non-empty queue, keeps it */
		if (q < 0 || mq_send(q, "one", 3, 1) || mq_notify(q, &sev) || mq_send(q, "two", 3, 2))
			return 2;
	} else if (!strcmp(argv[1], "shm-host")) {
		int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);

		if (id < 0 || shmat(id, NULL, 0) == (void *)-1 || shmctl(id, IPC_RMID, NULL))
			return 2;	/* removed: it goes away with this process */
	}
	if (q < 0 && strcmp(argv[1], "shm-host"))
		return 2;
	printf("ready\n");
	fflush(stdout);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, &old);
	while (!term)
		sigsuspend(&old);
	if (!strcmp(argv[1], "mq-notify")) {
		unsigned int prio;

		mq_getattr(q, &attr);
		if (attr.mq_curmsgs != 2 || mq_receive(q, buf, sizeof(buf), &prio) != 3 || prio != 2) {
			printf("FAIL: the queue lost its messages (%ld left)\n", attr.mq_curmsgs);
			return 1;
		}
	}
	printf("PASS\n");
	return 0;
}
"""


@pytest.fixture(scope="module")
def ipcprog(tmp_path_factory):
    return build_c(tmp_path_factory, "ipcprog", IPC_C)



def start(tree, prog, mode):
    tree.outfile = tree.workdir / f"{mode}.out"
    tree.start([str(prog), mode], tree.outfile)
    wait_for(lambda: "ready" in tree.output().splitlines() or tree.popen.poll() is not None,
             f"ipcprog {mode} to be ready")
    assert tree.popen.poll() is None, f"ipcprog {mode} failed its set-up:\n{tree.output()}"
    return tree.root


def refused(tree, pid, img):
    """Dumps pid, which must fail with one error line; the tree must be running after."""
    call = tree.crest("dump", "-t", pid, "-D", img, log=False)
    assert call.rc not in (0, None), "crest dump succeeded: want a refusal"
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"want one error line, got:\n{call.stderr}"
    assert proc_stat(pid)[0] not in "ZX", "the refused tree did not survive the dump"
    assert not (img / "inventory.img").exists()
    return lines[0]


def terminate_passes(tree):
    mark = tree.terminate()
    assert tree.popen.wait(timeout=10) == 0, f"ipcprog failed:\n{tree.output()}"
    tree.expect_pass(mark, "ipcprog")


def test_sysv_shm_in_host_namespace_refused(tree, ipcprog):
    pid = start(tree, ipcprog, "shm-host")
    line = refused(tree, pid, tree.workdir / "img")
    assert f"pid {pid}" in line and "SysV shared memory" in line and "ipc namespace" in line, line
    terminate_passes(tree)


def test_mq_notify_refused(tree, ipcprog):
    """Refused before any message is taken: the program then finds both still queued."""
    pid = start(tree, ipcprog, "mq-notify")
    line = refused(tree, pid, tree.workdir / "img")
    assert f"/crest-test-ipc-{pid}" in line and "mq_notify" in line and f"pid {pid}" in line, line
    terminate_passes(tree)


def ipcs_in(pid):
    """`ipcs` inside pid's ipc namespace: one (kind, key, id, owner, perms, size) per object."""
    res = subprocess.run(["nsenter", "-t", str(pid), "--ipc", "ipcs"], capture_output=True,
                         text=True, timeout=10)
    assert res.returncode == 0, f"ipcs: {res.stderr}"
    return sorted(tuple(l.split()[:5]) for l in res.stdout.splitlines()
                  if re.match(r"^0x[0-9a-f]+ ", l))


def test_sysv_tools_roundtrip(tree):
    out, img = tree.workdir / "ipcmk.out", tree.workdir / "img"
    tree.outfile = out
    # --no-pidns: the snapshot checks the host pid after the restore, and SIGTERM must end it.
    call = tree.crest_ok("run", "--no-pidns", "-O", out, "-E", out, "--", "sh", "-c",
                         "ipcmk -Q -p 0640 && ipcmk -M 10000 && ipcmk -S 3 -p 0604 && "
                         "echo ready && exec sleep 60", log=False)
    pid = int(call.stdout.strip())
    tree.root = pid
    tree.known.add(pid)
    wait_for(lambda: "ready" in tree.output().splitlines(), "ipcmk")
    before = ipcs_in(pid)
    assert len(before) == 3, f"ipcs before the dump: {before}"
    snap = tree.snapshot()
    tree.dump(img)
    tree.wait_gone(list(snap))
    reap_zombies()
    tree.crest_ok("restore", "-D", img, "-d")
    tree.wait_restored(snap)
    assert os.stat(f"/proc/{pid}/ns/ipc").st_ino != os.stat("/proc/self/ns/ipc").st_ino
    after = ipcs_in(pid)
    assert after == before, f"ipcs after the restore:\n{after}\nbefore the dump:\n{before}"
    os.kill(pid, 15)
    tree.wait_adopted(pid)
