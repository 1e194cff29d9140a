"""Charts as PNG (matplotlib, Agg backend: no display needed): posting volume and
claims per day per channel, and incident timelines, for the daily digest."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage.incidents import Incident, Member

LABEL_COLOURS = {"claim": "#d62728", "denial": "#1f77b4", "exchange": "#ff7f0e", "none": "#7f7f7f"}
MAX_CHANNELS = 6


def activity_png(
    days: Sequence[tuple[str, str, int, int]],
    timelines: Sequence[tuple[Incident, Sequence[Member]]] = (),
    *,
    title: str = "chanwatch",
) -> bytes:
    """Posts and claims per day for the busiest channels, then one row per incident:
    its posts over time, coloured by what the detector said (claim, denial, ...)."""
    from matplotlib.figure import Figure  # Agg through Figure: no pyplot, no global state

    rows = 2 + (1 if timelines else 0)
    fig = Figure(figsize=(9, 3.2 * rows), dpi=100)
    axes = fig.subplots(rows, 1)
    posts: dict[str, dict[str, int]] = defaultdict(dict)
    claims: dict[str, dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = defaultdict(int)
    for day, channel, n, c in days:
        posts[channel][day] = n
        claims[channel][day] = c
        totals[channel] += n
    all_days = sorted({d for d, *_ in days})
    top = sorted(totals, key=lambda ch: -totals[ch])[:MAX_CHANNELS]
    x = [datetime.fromisoformat(d) for d in all_days]
    for channel in top:
        axes[0].plot(x, [posts[channel].get(d, 0) for d in all_days], marker="o", label=channel)
    axes[0].set_title(f"{title}: posts per day")
    if top:
        axes[0].legend(fontsize=7, loc="upper left")
    width = 0.8 / max(1, len(top))
    for i, channel in enumerate(top):
        offsets = [k + i * width for k in range(len(all_days))]
        axes[1].bar(offsets, [claims[channel].get(d, 0) for d in all_days], width, label=channel)
    axes[1].set_xticks(range(len(all_days)), [d[5:] for d in all_days], fontsize=7)
    axes[1].set_title("captured-soldier claims per day")
    if timelines:
        _timelines(axes[2], timelines)
    fig.autofmt_xdate()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _timelines(axis: Any, timelines: Sequence[tuple[Incident, Sequence[Member]]]) -> None:
    labels = []
    for row, (incident, members) in enumerate(timelines):
        labels.append(f"#{incident.id} {incident.title}"[:40])
        for m in members:
            colour = LABEL_COLOURS.get(m.label or "none", LABEL_COLOURS["none"])
            axis.scatter([m.date], [row], color=colour, s=40 if m.label != "none" else 20)
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.set_ylim(-0.5, len(labels) - 0.5)
    axis.set_title("incidents: posts over time (red claim, blue denial, orange exchange)")
