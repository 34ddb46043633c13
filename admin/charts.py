"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, readable on a phone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 600, 200, 8, 22, 18


def bar_chart(points: Sequence[tuple[str, float]], *, title: str,
              fmt: Callable[[float], str] = lambda v: f"{v:,.0f}") -> Markup:
    """A bar chart of (label, value) pairs, scaled to the largest value, with every bar's value
    in its tooltip and the largest value printed. Scales to its container's width."""
    top = max((v for _, v in points), default=0.0)
    n = max(len(points), 1)
    plot_w = WIDTH - PAD_LEFT * 2
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / n
    bar = max(slot * 0.75, 1.0)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>",
             f'<text x="{PAD_LEFT}" y="12" class="chart-max">max {escape(fmt(top))}</text>',
             f'<line x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - PAD_LEFT}" '
             f'y2="{HEIGHT - PAD_BOTTOM}" class="chart-axis"/>']
    step = max(1, n // 6)
    for i, (label, value) in enumerate(points):
        h = 0.0 if top <= 0 else plot_h * value / top
        x = PAD_LEFT + i * slot + (slot - bar) / 2
        y = HEIGHT - PAD_BOTTOM - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                     f'class="chart-bar"><title>{escape(label)}: {escape(fmt(value))}'
                     "</title></rect>")
        if i % step == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 6}" class="chart-label">'
                         f"{escape(label)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above
