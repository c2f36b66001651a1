"""Restore with and without huge pages (`crest restore --no-thp`).

The madvise case has one mapping with MADV_NOHUGEPAGE ("nohuge") and one written in full
without advice ("dense", 16 MiB). A default restore fills dense with huge pages and, in the
THP mode "madvise", must leave it MADV_NOHUGEPAGE (the kernel cannot clear MADV_HUGEPAGE
otherwise): two "nh" mappings. With --no-thp the advice is exactly the original's: one. The
case checks its contents, flags and layout itself in both.
"""

import pytest


def thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else None


def nh_mappings(pid):
    with open(f"/proc/{pid}/smaps") as f:
        return sum(1 for line in f if line.startswith("VmFlags:") and " nh" in line)


def restore_and_count(tree, snap, imgdir, *opts):
    pidfile = tree.workdir / f"{imgdir.name}-{len(opts)}.pid"
    tree.crest_ok("restore", "-D", imgdir, "-d", "--pidfile", pidfile, *opts)
    tree.wait_restored(snap, pidfile=pidfile)
    return nh_mappings(tree.root)


@pytest.mark.parametrize("opts,want", [((), 2), (("--no-thp",), 1)])
def test_restore_thp_advice(tree, opts, want):
    if thp_mode() != "madvise":
        pytest.skip(f"THP mode is {thp_mode()}, not madvise: no advice is set around the fill")
    tree.start_case("madvise")
    snap = tree.snapshot()
    d1 = tree.workdir / "d1"
    tree.dump(d1, "-R")
    assert nh_mappings(tree.root) == 1, "the case should start with one nh mapping"
    mark = tree.terminate()
    assert tree.popen.wait(timeout=20) == 0
    tree.expect_pass(mark, "the original")
    tree.wait_gone(snap)
    got = restore_and_count(tree, snap, d1, *opts)
    assert got == want, f"restore {' '.join(opts)}: {got} nh mappings, want {want}"
    mark = tree.terminate()
    rc = tree.wait_adopted(tree.root)
    tree.expect_pass(mark, "the restored case")
    assert rc in (0, None)
