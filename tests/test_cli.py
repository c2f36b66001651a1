"""The command line outside dump and restore proper: help, version, check, show, unknown
verbs, and how `crest restore` (without -d) passes on the restored root's fate.
"""

import json
import os
import signal

import pytest

from crestlib import ROOT

VERBS = ["dump", "restore", "check", "show"]


def test_help(tree):
    call = tree.crest("--help", log=False)
    assert call.rc == 0, f"crest --help exited {call.rc}: {call.stderr}"
    for verb in VERBS:
        assert verb in call.stdout, f"crest --help does not mention {verb}"


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help(tree, verb):
    call = tree.crest(verb, "--help", log=False)
    assert call.rc == 0, f"crest {verb} --help exited {call.rc}: {call.stderr}"
    assert call.stdout.strip(), f"crest {verb} --help printed nothing on stdout"


def test_version(tree):
    call = tree.crest("--version", log=False)
    want = (ROOT / "VERSION").read_text().strip()
    assert call.rc == 0 and want in call.stdout, \
        f"crest --version: exit {call.rc}, {call.stdout!r}; want it to name {want}"


def test_unknown_verb(tree):
    call = tree.crest("frobnicate", log=False)
    assert call.rc != 0
    lines = [l for l in call.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "frobnicate" in lines[0], \
        f"want one line naming the verb, got:\n{call.stderr}"


def test_check(tree):
    call = tree.crest("check", log=False)
    assert call.rc == 0, f"crest check says this kernel cannot run crest: {call.stderr}"


def find_key(obj, key):
    """Every value of key anywhere in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from find_key(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from find_key(v, key)


def test_show(tree):
    root = tree.start_case("sighandlers")
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)

    call = tree.crest_ok("show", img, log=False)
    json.loads(call.stdout)
    call = tree.crest_ok("show", img / "inventory.img", log=False)
    inv = json.loads(call.stdout)
    assert root in [int(v) for v in find_key(inv, "root_pid")], \
        f"crest show inventory.img does not give root_pid {root}:\n{call.stdout}"
    for name in sorted(os.listdir(img)):
        if name.endswith(".img") and not name.startswith("pages-"):
            call = tree.crest_ok("show", img / name, log=False)
            try:
                json.loads(call.stdout)
            except ValueError as e:
                pytest.fail(f"crest show {name} is not JSON: {e}\n{call.stdout[:2000]}")


@pytest.mark.parametrize("how,want", [("exit", 1), ("signal", 128 + signal.SIGKILL)])
def test_restore_exit_status(tree, how, want):
    """crest restore exits with the restored root's exit code, or 128+N if signal N killed it."""
    env = dict(os.environ, CASE_SABOTAGE="mask" if how == "exit" else "")
    tree.start_case("sighandlers", env=env)
    snap = tree.snapshot()
    img = tree.workdir / "img"
    tree.dump(img)
    tree.expect_original_killed(snap)
    # The pidfile comes once crest let the tree go: before that, the processes wait in the
    # restorer untraced and look restored, but a SIGKILL then makes the restore fail (exit 1).
    pidfile = tree.workdir / "root.pid"
    restore = tree.crest_bg("restore", "-D", img, "--pidfile", pidfile)
    tree.wait_restored(snap, bg=restore, pidfile=pidfile)
    os.kill(tree.root, signal.SIGTERM if how == "exit" else signal.SIGKILL)
    rc = tree.finish_bg(restore)
    assert rc == want, f"crest restore exited {rc}, want {want}"
