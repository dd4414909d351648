"""A timeline of what nginx served, second by second, drawn as an SVG with the
deploys marked: what people would rather look at than read. The records come
from nginx's own access log (log_format TIMELINE_FORMAT: `$msec $status
$request_time`), so every request that reached nginx is counted, answered or
not. Used by bench/deploy --timeline; not installed."""
import html
import math

TIMELINE_FORMAT = "$msec $status $request_time"


def read_access_log(path):
    """[(end time, status, seconds)] from an access log in TIMELINE_FORMAT;
    a line that does not parse is skipped (nginx writes whole lines)."""
    records = []
    with open(path, encoding="ascii", errors="replace") as stream:
        for line in stream:
            fields = line.split()
            if len(fields) != 3:
                continue
            try:
                records.append((float(fields[0]), int(fields[1]), float(fields[2])))
            except ValueError:
                continue
    return records


def percentile(sorted_values, share):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, math.ceil(share * len(sorted_values)) - 1))
    return sorted_values[index]


def buckets(records, start, end, step=1.0):
    """Per step seconds from start to end: {"t": seconds since start, "requests",
    "failed" (status >= 500 or nginx's 499/502/504), "p50", "p99" (seconds)}.
    A request counts in the second it ended, as nginx logs it."""
    count = max(1, math.ceil((end - start) / step))
    times = [[] for _ in range(count)]
    failed = [0] * count
    for when, status, seconds in records:
        if not start <= when < end:
            continue
        index = int((when - start) / step)
        times[index].append(seconds)
        failed[index] += status >= 500 or status == 499
    out = []
    for index, values in enumerate(times):
        values.sort()
        out.append({"t": index * step, "requests": len(values) / step, "failed": failed[index],
                    "p50": percentile(values, 0.5), "p99": percentile(values, 0.99)})
    return out


def svg(series, deploys, title, width=960, height=420):
    """The SVG: requests per second (top), p50 and p99 latency on a log scale
    (bottom), failed requests as red ticks, and each deploy as a band from its
    start to the moment it went live (the switch) with a line at its end."""
    left, right, gap = 70, 20, 30
    top_h = (height - 90 - gap) // 2
    top_y, bottom_y = 40, 40 + top_h + gap
    span = max(1.0, series[-1]["t"] + 1 if series else 1.0)
    x = lambda t: left + (width - left - right) * t / span  # noqa: E731
    peak = max([b["requests"] for b in series] + [1])
    latencies = [v for b in series for v in (b["p50"], b["p99"]) if v]
    low, high = 1e-4, max(latencies + [1.0])
    log_y = lambda v: bottom_y + top_h - top_h * (math.log10(max(v, low)) - math.log10(low)) / (  # noqa: E731
        math.log10(high) - math.log10(low))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="20" font-size="13">{html.escape(title)}</text>']
    for start, live, end in deploys:
        parts.append(f'<rect x="{x(start):.1f}" y="{top_y}" width="{max(1.0, x(live) - x(start)):.1f}" '
                     f'height="{bottom_y + top_h - top_y}" fill="#dbe8ff"/>')
        parts.append(f'<line x1="{x(end):.1f}" x2="{x(end):.1f}" y1="{top_y}" y2="{bottom_y + top_h}" '
                     'stroke="#9db4d8" stroke-dasharray="3,3"/>')
    for y0 in (top_y, bottom_y):
        parts.append(f'<rect x="{left}" y="{y0}" width="{width - left - right}" height="{top_h}" '
                     'fill="none" stroke="#888"/>')

    def line(points, colour):
        if points:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
    line([(x(b["t"] + 0.5), top_y + top_h - top_h * b["requests"] / peak) for b in series], "#1f5fbf")
    line([(x(b["t"] + 0.5), log_y(b["p50"])) for b in series if b["p50"]], "#2a9d4b")
    line([(x(b["t"] + 0.5), log_y(b["p99"])) for b in series if b["p99"]], "#d98a00")
    for b in series:
        if b["failed"]:
            parts.append(f'<line x1="{x(b["t"] + 0.5):.1f}" x2="{x(b["t"] + 0.5):.1f}" y1="{top_y}" '
                         f'y2="{top_y + top_h}" stroke="red" stroke-width="2"/>')
    parts.append(f'<text x="{left - 6}" y="{top_y + 10}" text-anchor="end">{peak:.0f}/s</text>')
    parts.append(f'<text x="{left - 6}" y="{top_y + top_h}" text-anchor="end">0</text>')
    parts.append(f'<text x="{left + 6}" y="{top_y + 14}" fill="#1f5fbf">requests per second</text>')
    for value, label in ((1e-3, "1 ms"), (1e-2, "10 ms"), (1e-1, "100 ms"), (1.0, "1 s"), (10.0, "10 s")):
        if low <= value <= high:
            parts.append(f'<text x="{left - 6}" y="{log_y(value) + 4:.1f}" text-anchor="end">{label}</text>')
            parts.append(f'<line x1="{left}" x2="{width - right}" y1="{log_y(value):.1f}" '
                         f'y2="{log_y(value):.1f}" stroke="#eee"/>')
    parts.append(f'<text x="{left + 6}" y="{bottom_y + 14}"><tspan fill="#2a9d4b">p50</tspan> and '
                 '<tspan fill="#d98a00">p99</tspan> latency (log scale)</text>')
    tick = next(t for t in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1e9) if span / t <= 12)
    for mark in range(0, int(span) + 1, int(tick)):
        parts.append(f'<text x="{x(mark):.1f}" y="{bottom_y + top_h + 14}" text-anchor="middle">{mark} s</text>')
    failed = sum(b["failed"] for b in series)
    total = sum(b["requests"] for b in series)
    parts.append(f'<text x="{left}" y="{height - 14}">{span:.0f} s, {total:.0f} requests, {failed} failed '
                 f'(red), {len(deploys)} deploys: blue from push to switch, dashed when the push '
                 'returned</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
