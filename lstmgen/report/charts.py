"""The charts of the verify report as plain geometry: numbers in, SVG coordinates out.

Each chart is a `Chart`: its size, axes with tick positions and labels, and what it draws
(lines, dots, bars, marker lines), every coordinate already in SVG pixels, so the template
(`templates/report/report.html.j2`) only writes elements. Three kinds:

* `traces`: a sequence output over timesteps, the framework's values and the generated
  code's drawn over each other for a few sequences;
* `scatter`: a last-step output, the generated code's value against the framework's for
  every sequence, with the diagonal where they are equal;
* `error_histogram`: how many values have each absolute error, on a log scale, with the
  tolerance as a vertical line (values computed exactly alike are counted apart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

WIDTH = 440
HEIGHT = 260
#: left, right, top, bottom margins of the plot area inside a chart
MARGIN = (58, 14, 14, 40)


@dataclass
class Tick:
    at: float  # pixel position along its axis
    label: str


@dataclass
class Polyline:
    points: str  # "x,y x,y ..." in pixels
    css: str  # the class that styles it (framework, generated, diagonal, tolerance)


@dataclass
class Dot:
    x: float
    y: float
    css: str


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    css: str


@dataclass
class Chart:
    ident: str
    title: str
    x_label: str
    y_label: str
    legend: list[tuple[str, str]]  # (css class, text)
    width: int = WIDTH
    height: int = HEIGHT
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    lines: list[Polyline] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    note: str = ""

    @property
    def left(self) -> float:
        return MARGIN[0]

    @property
    def right(self) -> float:
        return self.width - MARGIN[1]

    @property
    def top(self) -> float:
        return MARGIN[2]

    @property
    def bottom(self) -> float:
        return self.height - MARGIN[3]

    @property
    def elements(self) -> int:
        """How many marks it draws (a chart with none would be blank)."""
        return len(self.lines) + len(self.dots) + len(self.bars)


class Scale:
    """A linear map from the data range [lo, hi] to the pixel range [a, b]."""

    def __init__(self, lo: float, hi: float, a: float, b: float) -> None:
        if not hi > lo:  # one value: give it some room
            pad = max(abs(lo) * 0.05, 1e-6)
            lo, hi = lo - pad, hi + pad
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v: float) -> float:
        return self.a + (v - self.lo) * (self.b - self.a) / (self.hi - self.lo)

    def ticks(self, count: int = 5) -> list[Tick]:
        step = nice_step((self.hi - self.lo) / count)
        first = math.ceil(self.lo / step) * step
        ticks = []
        v = first
        while v <= self.hi + step * 1e-9:
            ticks.append(Tick(round(self(v), 2), number(0.0 if abs(v) < step * 1e-9 else v)))
            v += step
        return ticks


def nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    if not raw > 0 or not math.isfinite(raw):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def number(v: float) -> str:
    return f"{v:.3g}"


def _range(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([np.ravel(a) for a in arrays])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    return float(values.min()), float(values.max())


def _points(xs: np.ndarray, ys: np.ndarray, sx: Scale, sy: Scale) -> str:
    return " ".join(
        f"{sx(float(x)):.1f},{sy(float(y)):.1f}" for x, y in zip(xs, ys) if math.isfinite(float(y))
    )


def traces(
    ident: str, title: str, framework: np.ndarray, generated: np.ndarray, sequences: int = 3
) -> Chart:
    """framework, generated: [N, T] values of one output over the timesteps."""
    shown = min(sequences, framework.shape[0])
    steps = framework.shape[1]
    chart = Chart(
        ident,
        title,
        "timestep",
        "output value",
        [("framework", "framework"), ("generated", "generated code")],
        note=f"the first {shown} of {framework.shape[0]} sequences",
    )
    sx = Scale(0, max(steps - 1, 1), chart.left, chart.right)
    lo, hi = _range(framework[:shown], generated[:shown])
    sy = Scale(lo, hi, chart.bottom, chart.top)
    chart.x_ticks, chart.y_ticks = sx.ticks(), sy.ticks()
    t = np.arange(steps)
    for k in range(shown):
        chart.lines.append(Polyline(_points(t, framework[k], sx, sy), f"framework s{k}"))
    for k in range(shown):
        chart.lines.append(Polyline(_points(t, generated[k], sx, sy), f"generated s{k}"))
    return chart


def scatter(ident: str, title: str, framework: np.ndarray, generated: np.ndarray) -> Chart:
    """framework, generated: [N] values of one output after the last timestep."""
    chart = Chart(
        ident,
        title,
        "framework",
        "generated code",
        [("generated", "one sequence"), ("diagonal", "equal")],
        note=f"{framework.shape[0]} sequences",
    )
    lo, hi = _range(framework, generated)
    sx = Scale(lo, hi, chart.left, chart.right)
    sy = Scale(lo, hi, chart.bottom, chart.top)
    chart.x_ticks, chart.y_ticks = sx.ticks(), sy.ticks()
    chart.lines.append(
        Polyline(f"{sx(sx.lo):.1f},{sy(sy.lo):.1f} {sx(sx.hi):.1f},{sy(sy.hi):.1f}", "diagonal")
    )
    for x, y in zip(framework, generated):
        if math.isfinite(float(x)) and math.isfinite(float(y)):
            chart.dots.append(Dot(round(sx(float(x)), 1), round(sy(float(y)), 1), "generated"))
    return chart


def error_histogram(ident: str, title: str, errors: np.ndarray, tolerance: float) -> Chart:
    """errors: the absolute errors of one output (any shape); tolerance: the bound."""
    errors = np.ravel(np.asarray(errors, np.float64))
    errors = np.where(np.isnan(errors), np.inf, errors)
    exact = int(np.sum(errors == 0))
    positive = errors[errors > 0]
    chart = Chart(
        ident,
        title,
        "absolute error |generated - framework| (log scale)",
        "values",
        [("bar", "values"), ("tolerance", f"tolerance {tolerance:g}")],
    )
    tol_exp = math.log10(tolerance) if tolerance > 0 else -5.0
    finite = positive[np.isfinite(positive)]
    lo_exp, hi_exp = math.floor(tol_exp) - 4, math.ceil(tol_exp) + 1
    if finite.size:
        lo_exp = min(math.floor(math.log10(float(finite.min()))), math.floor(tol_exp) - 3)
        hi_exp = max(math.ceil(math.log10(float(finite.max()))), hi_exp)
    lo_exp = max(lo_exp, -16)
    hi_exp = max(hi_exp, lo_exp + 1)
    bins_per_decade = 2
    edges = np.linspace(lo_exp, hi_exp, (hi_exp - lo_exp) * bins_per_decade + 1)
    logs = np.log10(np.clip(finite, 10.0**lo_exp, 10.0**hi_exp))
    counts, _ = np.histogram(logs, bins=edges)
    counts[-1] += int(np.sum(~np.isfinite(positive)))  # infinite (or NaN) errors: the top bin
    sx = Scale(lo_exp, hi_exp, chart.left, chart.right)
    top = max(int(counts.max()) if counts.size else 0, 1) * 1.1  # headroom over the tallest
    sy = Scale(0, top, chart.bottom, chart.top)
    chart.x_ticks = [Tick(round(sx(e), 2), f"1e{e}") for e in range(lo_exp, hi_exp + 1)]
    chart.y_ticks = sy.ticks(4)
    for count, a, b in zip(counts, edges[:-1], edges[1:]):
        if count:
            y = sy(float(count))
            css = "bar over" if a >= tol_exp else "bar"
            chart.bars.append(
                Bar(
                    round(sx(a) + 1, 1),
                    round(y, 1),
                    round(sx(b) - sx(a) - 2, 1),
                    round(chart.bottom - y, 1),
                    int(count),
                    css,
                )
            )
    x_tol = sx(tol_exp)
    chart.lines.append(
        Polyline(f"{x_tol:.1f},{chart.top:.1f} {x_tol:.1f},{chart.bottom:.1f}", "tolerance")
    )
    total = errors.size
    chart.note = (
        f"{total} values; {exact} computed exactly alike (error 0, not drawn)"
        if exact
        else f"{total} values"
    )
    return chart
