# The compiled scanner (_vcfscan.c); see vcfscan.py.

def scan(
    text: bytes, ncols: int, keys: tuple[bytes, ...], /
) -> tuple[int, int, int, int, bytes, tuple[tuple[bytes, bytes], ...]]: ...
