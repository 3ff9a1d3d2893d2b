"""Pieces of bench/run, in reading order: deps, limits, workdir, procs, backend,
nginxconf, proxies, scenarios, load, h2load, pyclients (driving client_handshake.py and
client_idle.py, built on tlsconn.py), measure, report."""
