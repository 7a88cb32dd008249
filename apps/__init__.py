"""The three applications built on :mod:`core`."""
