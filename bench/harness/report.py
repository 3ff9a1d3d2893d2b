"""Medians over the rounds, portier's ratios to the best peer, and the one table."""
import statistics

from . import profile

# key in a run record -> (column title, format); every key also goes to the JSON medians
COLUMNS = [
    ("rps", "req/s", "{:.0f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("cpu_us_per_req", "CPU us/req", "{:.1f}"),
    ("rss_idle_mib", "RSS idle MiB", "{:.1f}"),
    ("rss_load_mib", "RSS load MiB", "{:.1f}"),
    ("kib_per_conn", "KiB/conn", "{:.1f}"),
    ("gen_cpu_pct", "gen CPU%", "{:.0f}"),
    ("other_cpu0_pct", "other CPU0%", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
]
EXTRA = ["requests", "backend_cpu_us_per_req", "pss_idle_mib", "pss_load_mib",
         "pss_kib_per_conn", "open_seconds", "connections"] + \
    [f"cpu_us_{p}" for p in profile.PARTS]
# metric -> (column title, True when higher is better)
RATIOS = [("rps", "req/s", True), ("cpu_us_per_req", "CPU/req", False),
          ("kib_per_conn", "KiB/conn", False)]
BASE = "portier"


def first_line(text):
    return (text or "").strip().splitlines()[0] if (text or "").strip() else "error"


def medians(runs, proxies):
    """{scenario: {proxy: {metric: median over its successful runs, "runs": n,
    "failed": m, "error": first error}}}: scenarios in run order, proxies in the order of `proxies`."""
    out = {}
    for sc in dict.fromkeys(r["scenario"] for r in runs):
        out[sc] = {}
        for name in [p for p in proxies
                     if any(r["proxy"] == p and r["scenario"] == sc for r in runs)]:
            mine = [r for r in runs if r["scenario"] == sc and r["proxy"] == name]
            ok = [r for r in mine if "error" not in r]
            m = {k: statistics.median(r[k] for r in ok)
                 for k in [c[0] for c in COLUMNS] + EXTRA
                 if ok and all(r.get(k) is not None for r in ok)}
            m.update(runs=len(ok), failed=len(mine) - len(ok))
            if len(ok) < len(mine):
                first = next(r for r in mine if "error" in r)
                m["error"], m["error_kind"] = first_line(first["error"]), first["error_kind"]
            out[sc][name] = m
    return out


# a turn's figure (bench/harness/measure.py Slices.turns) for the per-turn ratios
TURN_VALUE = {"rps": lambda t: t["requests"] / t["seconds"] if t["seconds"] else None,
              "cpu_us_per_req": lambda t: t["cpu"] * 1e6 / t["requests"] if t["requests"]
              else None}


def ratios(runs, med):
    """{scenario: {metric: {"best": peer, "ratio": portier / best peer (of the medians),
    "per_round": [portier / that peer, each round], "per_turn": [portier's turn / the
    peer's turn of the same cycle, every turn of every round]}}}; the best peer is the
    one with the best median (highest req/s, lowest CPU/req and KiB/conn)."""
    out = {}
    for sc, by_proxy in med.items():
        base = by_proxy.get(BASE, {})
        for k, _, higher in RATIOS:
            peers = {p: m[k] for p, m in by_proxy.items() if p != BASE and m.get(k)}
            if k not in base or not peers:
                continue
            best = (max if higher else min)(peers, key=peers.get)
            per_round, per_turn = [], []
            for rnd in sorted({r["round"] for r in runs}):
                a = [r for r in runs if r["round"] == rnd and r["scenario"] == sc
                     and r["proxy"] == BASE and r.get(k) is not None]
                b = [r for r in runs if r["round"] == rnd and r["scenario"] == sc
                     and r["proxy"] == best and r.get(k)]
                if not (a and b):
                    continue
                per_round.append(a[0][k] / b[0][k])
                if k in TURN_VALUE:
                    for ta, tb in zip(a[0].get("turns") or [], b[0].get("turns") or []):
                        va, vb = TURN_VALUE[k](ta), TURN_VALUE[k](tb)
                        if va is not None and vb:
                            per_turn.append(va / vb)
            out.setdefault(sc, {})[k] = {"best": best, "ratio": base[k] / peers[best],
                                         "per_round": per_round, "per_turn": per_turn}
    return out


def table(med, rat):
    """One row per scenario and proxy; the ÷best columns only when there are peers."""
    ratios_shown = RATIOS if rat else []
    ratio_cols = [f"{title} ÷best" for _, title, _ in ratios_shown]
    head = ["scenario", "proxy"] + [t for _, t, _ in COLUMNS] + ratio_cols
    rows = []
    for sc, by_proxy in med.items():
        for name, m in by_proxy.items():
            if not m["runs"]:
                rows.append([sc, name, f"FAILED: {m['error'][:100]}"])
                continue
            cells = [fmt.format(m[k]) if k in m else "-" for k, _, fmt in COLUMNS]
            if m["failed"]:
                cells[-1] += f" +{m['failed']} failed"
            for k, _, _ in ratios_shown:
                r = rat.get(sc, {}).get(k) if name == BASE else None
                cells.append(f"{r['ratio']:.2f} {r['best']}" if r else "")
            rows.append([sc, name] + cells)
    full = [r for r in rows if len(r) == len(head)]
    widths = [max(len(x) for x in col) for col in zip(head, *full)]
    widths[:2] = [max(len(r[i]) for r in [head] + rows) for i in (0, 1)]

    def line(cells):
        if len(cells) < len(head):  # a failed row: its message spans the figures
            return "  ".join([cells[0].ljust(widths[0]), cells[1].ljust(widths[1]), cells[2]])
        return "  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def profile_table(med):
    """--profile: CPU us/req split into profile.PARTS, medians over the rounds; the
    last column is what every proxy here shares (kernel + syscall + openssl)."""
    keys = [f"cpu_us_{p}" for p in profile.PARTS]
    head = ["scenario", "proxy"] + list(profile.PARTS) + ["total", "shared"]
    rows = []
    for sc, by_proxy in med.items():
        for name, m in by_proxy.items():
            if all(k in m for k in keys):
                v = [m[k] for k in keys]
                rows.append([sc, name] + [f"{x:.1f}" for x in v] +
                            [f"{sum(v):.1f}", f"{sum(v[:3]):.1f}"])
    if not rows:
        return "no profile (is perf installed and allowed? see the runs' \"profile\" in the JSON)"
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join(["where the CPU goes, us/req (perf, 999 Hz; harness/profile.py):",
                      fmt(head), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def notes(rat, failures):
    lines = ["÷best: portier / the best peer's median in this run (req/s: above 1 is better "
             "for portier; CPU/req, KiB/conn: below 1 is better); per-round range, the "
             "median of the per-round ratios and of the per-turn ones (each turn against "
             "the peer's turn of the same cycle, seconds apart):"] if rat else []
    for sc, by_metric in rat.items():
        # The median of the per-round ratios holds better than the ratio of the
        # medians when the machine's speed drifts: within a round the proxies
        # take turns of seconds, the rounds are minutes apart.
        parts = [f"{k} {min(r['per_round']):.2f}-{max(r['per_round']):.2f} "
                 f"(median {statistics.median(r['per_round']):.2f}"
                 + (f"; per turn {statistics.median(r['per_turn']):.2f} of {len(r['per_turn'])}"
                    if len(r.get("per_turn") or []) > len(r["per_round"]) else "") + ")"
                 for k, r in by_metric.items() if r["per_round"]]
        if parts:
            lines.append(f"  {sc}: " + ", ".join(parts))
    if failures:
        lines.append("failed runs:")
        lines += [f"  round {f['round']} {f['scenario']} {f['proxy']}: {first_line(f['error'])}"
                  for f in failures]
    return "\n".join(lines)
