"""pytest setup shared by the crest test drivers (run with /usr/bin/python3 -m pytest tests/)."""

import signal

import pytest

import crestlib


def on_sigterm(sig, frame):
    """scripts/check.sh's time bound ran out: kill the trees under test, then stop as on ^C."""
    for tree in list(crestlib.LIVE_TREES):
        tree.cleanup()
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    # Restored trees (crest restore -d) and orphans of killed trees come to the driver, which
    # can then wait for them and reap them by pid instead of leaving zombies to init.
    crestlib.make_subreaper()
    signal.signal(signal.SIGTERM, on_sigterm)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, adds the case output, crest's stderr and crest's logs to the report."""
    outcome = yield
    rep = outcome.get_result()
    tree = getattr(item, "funcargs", {}).get("tree")
    if rep.failed and tree is not None and rep.when == "call":
        rep.sections.append(("crest diagnostics", tree.report()))


@pytest.fixture
def tree(tmp_path):
    """A process tree under test in its own directory; whatever is left of it is killed."""
    t = crestlib.Tree(tmp_path)
    yield t
    t.cleanup()
