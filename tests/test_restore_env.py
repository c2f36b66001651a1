"""What `crest restore` itself carries must not leak into the tree it restores.

The restored processes are forked from crest, so they start with crest's signal dispositions:
a crest started under nohup (SIGHUP ignored) or from a shell that ignores SIGINT and SIGQUIT
for background jobs must still give back every signal's original action.
"""

import signal
import subprocess

from crestlib import CREST, WAIT

IGNORED_BY_CREST = [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGXFSZ,
                    signal.SIGUSR2]


def ignore_some_signals():
    for sig in IGNORED_BY_CREST:
        signal.signal(sig, signal.SIG_IGN)


def test_crest_ignored_signals_do_not_leak(tree):
    tree.start_case("sighandlers")
    snap = tree.snapshot()
    d1 = tree.workdir / "d1"
    tree.dump(d1)
    tree.expect_original_killed(snap)
    pidfile = tree.workdir / "root.pid"
    restore = subprocess.run(
        [str(CREST), "restore", "-D", str(d1), "-d", "--pidfile", str(pidfile)],
        preexec_fn=ignore_some_signals, restore_signals=False, capture_output=True,
        text=True, timeout=WAIT)
    assert restore.returncode == 0, f"crest restore failed: {restore.stderr}"
    tree.wait_restored(snap, pidfile=pidfile)
    mark = tree.terminate()
    rc = tree.wait_adopted(tree.root)
    tree.expect_pass(mark, "the case restored by a crest that ignores some signals")
    assert rc in (0, None), f"the restored case exited {rc}"
