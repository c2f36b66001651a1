"""Self-test of the case programs, without crest: a case must pass when its state is left
alone and fail when it is damaged, or it proves nothing.

Each case is run untouched (it must PASS), then with CASE_SABOTAGE=? (it must still PASS and
name its sabotage points), then once per point with CASE_SABOTAGE=NAME: the case damages that
part of its own state after SIGTERM and before checking, and must exit non-zero with a FAIL line.
"""

import os
import re
import signal
import subprocess

import pytest

from crestlib import Tree, case_names


def run_case(tree, name, sabotage):
    env = dict(os.environ)
    env.pop("CASE_SABOTAGE", None)
    if sabotage is not None:
        env["CASE_SABOTAGE"] = sabotage
    tree.start_case(name, env=env)
    mark = tree.mark()
    os.kill(tree.root, signal.SIGTERM)
    try:
        rc = tree.popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} (CASE_SABOTAGE={sabotage}) did not exit after SIGTERM")
    tree.wait_gone(tree.snapshot() or [tree.root])
    return rc, tree.output(), tree.output()[mark:]


@pytest.mark.parametrize("case", case_names())
def test_untouched_case_passes(tree, case):
    rc, _, new = run_case(tree, case, None)
    assert rc == 0 and "PASS" in new.splitlines(), f"exit {rc}, output:\n{new}"


@pytest.mark.parametrize("case", case_names())
def test_damaged_case_fails(tmp_path, case):
    listing = Tree(tmp_path / "list")
    (tmp_path / "list").mkdir()
    try:
        rc, out, new = run_case(listing, case, "?")
    finally:
        listing.cleanup()
    assert rc == 0 and "PASS" in new.splitlines(), \
        f"with CASE_SABOTAGE=? the case must still pass: exit {rc}, output:\n{new}"
    points = sorted(set(re.findall(r"^sabotage (\S+)$", out, re.M)))
    assert points, f"case {case} has no sabotage points: it cannot be shown to fail"

    missed = []
    for point in points:
        work = tmp_path / point
        work.mkdir()
        t = Tree(work)
        try:
            rc, _, new = run_case(t, case, point)
        finally:
            t.cleanup()
        if rc == 0 or not re.search(r"^FAIL", new, re.M):
            missed.append(f"{point}: exit {rc}, output after SIGTERM:\n{new}")
    assert not missed, f"case {case} did not notice damage:\n" + "\n".join(missed)
