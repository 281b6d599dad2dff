"""The test run itself: `make test` relies on pytest-xdist keeping each xdist_group on one
process (modules that share a service, the install test's environment). pytest 9.2 broke that
silently (pytest-xdist#1386): every test still passed, each service just started several times."""

import pytest

pytestmark = pytest.mark.xdist_group("suite")


def test_xdist_groups_are_kept_together(request: pytest.FixtureRequest) -> None:
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist with --dist loadgroup (make test does)")
    assert request.node.nodeid.endswith("@suite"), request.node.nodeid
