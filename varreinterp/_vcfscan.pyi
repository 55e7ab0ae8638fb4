# The compiled scanner (_vcfscan.c); see vcfscan.py.

ABI: int

def scan(
    text: bytes, ncols: int, keys: tuple[bytes, ...], /
) -> tuple[int, int, int, int, bytes, tuple[tuple[bytes, bytes], ...]]: ...
def prefilter(
    text: bytes, n_tabs: int, samples: tuple[int, ...], left_align: bool, /
) -> tuple[int, bytes, bytes, bytes, bytes, bytes, bytes, bytes] | None: ...
