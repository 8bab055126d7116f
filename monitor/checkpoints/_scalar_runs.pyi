"""Types of the compiled pass over ``data.pkl`` (``_scalar_runs.c``); see :mod:`monitor.checkpoints.runs`."""

def collapse(
    data: bytes | bytearray, tag: bytes, /
) -> (
    tuple[bytes, bytearray, bytes, bytes, bytes] | None
): ...
def memo_bound(data: bytes | bytearray, /) -> int: ...
