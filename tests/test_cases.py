"""Every case program (tests/cases/NAME.c) checkpointed and restored in every mode.

  dump           dump (the tree is killed), restore (crest waits for the root and exits with
                 its status), SIGTERM: the case checks its state and crest must exit 0.
  leave_running  dump -R: the original keeps running and must still pass its checks; then a
                 copy is restored from the same image with -d and must pass too.
  redump         dump, restore in the background, dump the restored tree again (it is killed
                 and the first restore exits 128+signal), restore that second image with -d.

A case passes only with exit 0 and a "PASS" line written after SIGTERM.
"""

import pytest

from crestlib import case_names, tree_changes, tree_details

MODES = ["dump", "leave_running", "redump"]


def restore_and_check(tree, snap, imgdir):
    """Restores imgdir with crest waiting for the root; the case must pass and crest exit 0."""
    restore = tree.crest_bg("restore", "-D", imgdir)
    tree.wait_restored(snap, bg=restore)
    mark = tree.terminate()
    rc = tree.finish_bg(restore)
    tree.expect_pass(mark, "the restored case")
    assert rc == 0, f"crest restore exited {rc}: the restored case's exit status should be 0"
    tree.wait_gone(snap)


def restore_detached_and_check(tree, snap, imgdir):
    """Restores imgdir with -d: crest exits 0 once the tree runs, the root comes to us."""
    pidfile = tree.workdir / f"{imgdir.name}.pid"
    tree.crest_ok("restore", "-D", imgdir, "-d", "--pidfile", pidfile)
    tree.wait_restored(snap, pidfile=pidfile)
    mark = tree.terminate()
    rc = tree.wait_adopted(tree.root)
    tree.expect_pass(mark, "the restored case")
    assert rc in (0, None), f"the restored case exited {rc}"
    tree.wait_gone(snap)


def mode_dump(tree, snap):
    d1 = tree.workdir / "d1"
    tree.dump(d1)
    tree.expect_original_killed(snap)
    restore_and_check(tree, snap, d1)


def mode_leave_running(tree, snap):
    d1 = tree.workdir / "d1"
    before = tree_details(snap)
    tree.dump(d1, "-R")
    changed = tree_changes(before)
    assert not changed, "after dump -R the tree is not as before:\n" + "\n".join(changed)
    mark = tree.terminate()
    try:
        rc = tree.popen.wait(timeout=20)
    except Exception:
        pytest.fail("the original did not exit after SIGTERM")
    tree.expect_pass(mark, "the original, left running")
    assert rc == 0, f"the original exited {rc} after dump -R"
    tree.wait_gone(snap)
    restore_detached_and_check(tree, snap, d1)


def mode_redump(tree, snap):
    d1, d2 = tree.workdir / "d1", tree.workdir / "d2"
    tree.dump(d1)
    tree.expect_original_killed(snap)
    # The pidfile is written once every thread is let go: before that the tree is crest's.
    pidfile = tree.workdir / "first.pid"
    first = tree.crest_bg("restore", "-D", d1, "--pidfile", pidfile)
    tree.wait_restored(snap, bg=first, pidfile=pidfile)
    again = tree.snapshot()
    assert sorted(again) == sorted(snap), f"restored tree has pids {sorted(again)}, " \
                                          f"want {sorted(snap)}"
    tree.dump(d2)
    rc = tree.finish_bg(first)
    assert 128 < rc < 128 + 65, \
        f"crest restore exited {rc} when its tree was dumped and killed: want 128+signal"
    tree.wait_gone(snap)
    restore_detached_and_check(tree, snap, d2)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", case_names())
def test_case(tree, case, mode):
    tree.start_case(case)
    snap = tree.snapshot()
    {"dump": mode_dump, "leave_running": mode_leave_running, "redump": mode_redump}[mode](
        tree, snap)
