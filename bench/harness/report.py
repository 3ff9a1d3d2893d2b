"""Medians over the repeats, the table, and portier's ratios to each peer."""
import statistics

# key in a run record -> (column title, format)
COLUMNS = [
    ("rps", "req/s", "{:.0f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("cpu_us_per_req", "CPU us/req", "{:.1f}"),
    ("rss_idle_mib", "RSS idle MiB", "{:.1f}"),
    ("rss_load_mib", "RSS load MiB", "{:.1f}"),
    ("wrk_cpu_pct", "wrk CPU%", "{:.0f}"),
    ("other_cpu0_pct", "other CPU0%", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
]
# metric -> True when higher is better (only used to say so in the header)
RATIOS = [("rps", "req/s", True), ("p99_ms", "p99", False), ("cpu_us_per_req", "CPU/req", False)]


def medians(runs):
    """{proxy: {metric: median over its runs}}, proxies in first-run order."""
    out = {}
    for name in dict.fromkeys(r["proxy"] for r in runs):
        mine = [r for r in runs if r["proxy"] == name]
        out[name] = {k: statistics.median(r[k] for r in mine)
                     for k, _, _ in COLUMNS if all(r.get(k) is not None for r in mine)}
        out[name]["runs"] = len(mine)
    return out


def ratios(runs, med, base="portier"):
    """portier / peer for each ratio metric: of the medians, and the range of the
    per-round ratios (each round runs every proxy back to back)."""
    out = {}
    for peer in med:
        if peer == base or base not in med:
            continue
        out[peer] = {}
        for k, _, _ in RATIOS:
            per_round = []
            for rnd in sorted({r["round"] for r in runs}):
                a = [r[k] for r in runs if r["round"] == rnd and r["proxy"] == base]
                b = [r[k] for r in runs if r["round"] == rnd and r["proxy"] == peer]
                if a and b and b[0]:
                    per_round.append(a[0] / b[0])
            out[peer][k] = {"of_medians": med[base][k] / med[peer][k] if med[peer][k] else None,
                            "per_round": per_round}
    return out


def table(med):
    head = ["proxy"] + [t for _, t, _ in COLUMNS]
    rows = [[name] + [fmt.format(m[k]) if k in m else "-" for k, _, fmt in COLUMNS]
            for name, m in med.items()]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def ratio_lines(rat, base="portier"):
    lines = []
    for peer, rs in rat.items():
        parts = []
        for k, title, higher in RATIOS:
            r = rs[k]
            rng = (f" [rounds {min(r['per_round']):.2f}-{max(r['per_round']):.2f}]"
                   if r["per_round"] else "")
            val = f"{r['of_medians']:.2f}" if r["of_medians"] is not None else "-"
            parts.append(f"{title} {val}{rng}")
        lines.append(f"{base}/{peer}: " + ", ".join(parts))
    lines.append("(req/s: higher is better for portier; p99 and CPU/req: lower is better)")
    return "\n".join(lines)
