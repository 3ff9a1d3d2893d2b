"""Pieces of bench/run: deps, workdir, procs, servers, load, report (read in that order)."""
