"""The two v2 readers, for tests that run once with each: the compiled pass and the line reader that an install
without a C compiler uses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from monitor.logs import v2

BLOCK_READERS: dict[str, Callable[[bytes], v2.V2Blocks]] = {
    "compiled": v2._compiled_blocks,
    "python": v2._python_blocks,
}


def require_compiled() -> None:
    if v2._compiled is None:
        pytest.fail("monitor.logs._v2log is not built: install with a C compiler present (scripts/test does)")


@pytest.fixture(params=list(BLOCK_READERS))
def block_reader(request: pytest.FixtureRequest) -> Callable[[bytes], v2.V2Blocks]:
    """One block reader, called directly on a text of any size."""
    if request.param == "compiled":
        require_compiled()
    return BLOCK_READERS[request.param]


@pytest.fixture(params=list(BLOCK_READERS))
def v2_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The reader behind LogParser: the compiled pass, or the line reader as in an install without one."""
    if request.param == "compiled":
        require_compiled()
    else:
        monkeypatch.setattr(v2, "_compiled", None)
    return request.param
