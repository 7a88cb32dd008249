"""Core's I/O layer: artifact directories (manifest, guard, atomic replace, verify on load)."""
