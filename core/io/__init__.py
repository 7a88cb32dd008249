"""Core's I/O layer: table files (:mod:`core.io.tables`) and artifact directories (:mod:`core.io.artifacts`).

Every app reads its input files with :func:`core.io.tables.read_rows` / :func:`~core.io.tables.read_frame`
and writes every model, index, KB and output directory with :func:`core.io.artifacts.open_artifact`.
"""
