"""Charts as inline SVG, drawn on the server (no chart library, no JavaScript).

Each function returns SVG markup (a ``markupsafe.Markup``) that scales to its container's width
(``viewBox`` + ``width=100%``); labels are escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

W, H = 600, 180
PAD_L, PAD_R, PAD_T, PAD_B = 64, 10, 10, 24


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def bars(series: Sequence[tuple[str, Sequence[int], str]], labels: Sequence[str], title: str) -> Markup:
    """Grouped bars: `series` of (name, values, colour), one value per label (e.g. per minute)."""
    n = max((len(v) for _, v, _ in series), default=0)
    top = max([1, *(x for _, v, _ in series for x in v)])
    inner_w, inner_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    slot = inner_w / max(n, 1)
    width = max(slot / (len(series) + 1), 1)
    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    parts += _axes(top, inner_h)
    for s, (name, values, colour) in enumerate(series):
        for i, v in enumerate(values):
            h = inner_h * v / top
            x = PAD_L + i * slot + s * width + width / 2
            parts.append(f'<rect x="{_fmt(x)}" y="{_fmt(PAD_T + inner_h - h)}" width="{_fmt(width)}" height="{_fmt(h)}" '
                         f'fill="{colour}"><title>{escape(name)} {escape(labels[i] if i < len(labels) else "")}: {v}</title></rect>')
    for i in (0, n // 2, n - 1) if n else ():
        if i < len(labels):
            parts.append(f'<text x="{_fmt(PAD_L + i * slot + slot / 2)}" y="{H - 6}" text-anchor="middle">{escape(labels[i])}</text>')
    parts.append(_legend([(name, colour) for name, _, colour in series]))
    parts.append("</svg>")
    return Markup("".join(parts))


def line(points: Sequence[tuple[float, float]], title: str, x_label: Callable[[float], str], y_label: Callable[[float], str]) -> Markup:
    """A step line of cumulative values: `points` as (x, y), x ascending."""
    inner_w, inner_h = W - PAD_L - PAD_R, H - PAD_T - PAD_B
    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    if not points:
        parts.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no earnings yet</text></svg>')
        return Markup("".join(parts))
    x0, x1 = points[0][0], points[-1][0]
    span = (x1 - x0) or 1.0
    top = max(y for _, y in points) or 1.0
    parts += _axes(top, inner_h, y_label)

    def px(x: float) -> float:
        return PAD_L + inner_w * (x - x0) / span if x1 != x0 else PAD_L + inner_w / 2

    def py(y: float) -> float:
        return PAD_T + inner_h - inner_h * y / top

    path = [f"M{_fmt(px(points[0][0]))},{_fmt(py(0))}"]
    prev_y = 0.0
    for x, y in points:
        path.append(f"L{_fmt(px(x))},{_fmt(py(prev_y))}L{_fmt(px(x))},{_fmt(py(y))}")
        prev_y = y
    parts.append(f'<path d="{"".join(path)}" fill="none" stroke="#2563eb" stroke-width="2"/>')
    for x, y in points:
        parts.append(f'<circle cx="{_fmt(px(x))}" cy="{_fmt(py(y))}" r="3" fill="#2563eb"><title>{escape(x_label(x))}: '
                     f"{escape(y_label(y))}</title></circle>")
    parts.append(f'<text x="{PAD_L}" y="{H - 6}">{escape(x_label(x0))}</text>')
    parts.append(f'<text x="{W - PAD_R}" y="{H - 6}" text-anchor="end">{escape(x_label(x1))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _axes(top: float, inner_h: float, label: Callable[[float], str] | None = None) -> list[str]:
    out = [f'<line x1="{PAD_L}" y1="{PAD_T + inner_h}" x2="{W - PAD_R}" y2="{PAD_T + inner_h}" class="axis"/>']
    for frac in (0.0, 0.5, 1.0):
        y = PAD_T + inner_h - inner_h * frac
        text = label(top * frac) if label else _fmt(top * frac)
        out.append(f'<text x="{PAD_L - 4}" y="{_fmt(y + 4)}" text-anchor="end">{escape(text)}</text>')
        out.append(f'<line x1="{PAD_L}" y1="{_fmt(y)}" x2="{W - PAD_R}" y2="{_fmt(y)}" class="grid"/>')
    return out


def _legend(items: Sequence[tuple[str, str]]) -> str:
    out = []
    x = PAD_L + 6
    for name, colour in items:
        out.append(f'<rect x="{x}" y="{PAD_T}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + 14}" y="{PAD_T + 9}">{escape(name)}</text>')
        x += 16 + 8 * len(name)
    return "".join(out)
