"""The throughput chart above the task list: per minute over the last hour, the tasks
done and failed and the due tasks, from the workers' records (their ``history``).

``series()`` does the arithmetic; ``drawing()`` lays the series out for the inline SVG
of ``admin/django_taskqueue/task/chart.html``; ``summary()`` says it in one line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from django.utils import dateformat, formats, timezone
from django.utils.translation import gettext

MINUTES = 60

# The SVG's coordinates (its viewBox): the plot area, then the axes' labels around it.
WIDTH, HEIGHT = 720, 190
LEFT, RIGHT, TOP, BOTTOM = 44.0, 676.0, 10.0, 160.0
# A bar fills this share of its minute's slot.
BAR_SHARE = 0.7
# Nonzero values stay visible next to a peak a hundred times higher.
MIN_HEIGHT = 1.0
# The time axis is labelled at these minutes past the hour (local time).
LABEL_EVERY = 15


class HasHistory(Protocol):
    """A worker's record, as far as the chart reads it."""

    history: Any


@dataclass(frozen=True)
class Minute:
    start: datetime
    succeeded: int = 0
    failed: int = 0
    # The most due tasks any worker counted in this minute; None: nobody counted.
    depth: int | None = None


@dataclass(frozen=True)
class Series:
    """``MINUTES`` minutes, oldest first; the last is the current (partial) minute."""

    minutes: tuple[Minute, ...]
    # Whether any worker wrote a minute of this hour: otherwise there is nothing to draw.
    reported: bool

    @property
    def succeeded(self) -> int:
        return sum(minute.succeeded for minute in self.minutes)

    @property
    def failed(self) -> int:
        return sum(minute.failed for minute in self.minutes)


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return 0


def _sample(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def series(records: Iterable[HasHistory], now: datetime, minutes: int = MINUTES) -> Series:
    """Sum the workers' histories per minute over the ``minutes`` up to ``now``.

    Each history maps a minute (seconds since the epoch, as a string) to ``[succeeded,
    failed, due tasks]``. Done and failed tasks add up over the workers; the due tasks
    are the largest sample of the minute, since every worker counts the same table. A
    minute no worker wrote has no depth (a gap), not a depth of 0. Minutes outside the
    window and malformed entries are left out.
    """
    last = int(now.timestamp()) // 60 * 60
    first = last - 60 * (minutes - 1)
    succeeded = [0] * minutes
    failed = [0] * minutes
    depth: list[int | None] = [None] * minutes
    reported = False
    for record in records:
        history = record.history
        if not isinstance(history, dict):
            continue
        for key, values in history.items():
            try:
                index = (int(key) - first) // 60
            except (TypeError, ValueError):
                continue
            if not 0 <= index < minutes or not isinstance(values, list | tuple):
                continue
            reported = True
            done, failures, due = [*values, None, None, None][:3]
            succeeded[index] += _count(done)
            failed[index] += _count(failures)
            sample = _sample(due)
            if sample is not None:
                previous = depth[index]
                depth[index] = sample if previous is None else max(previous, sample)
    return Series(
        minutes=tuple(
            Minute(
                start=datetime.fromtimestamp(first + 60 * index, tz=UTC),
                succeeded=succeeded[index],
                failed=failed[index],
                depth=depth[index],
            )
            for index in range(minutes)
        ),
        reported=reported,
    )


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... that is at least ``value``."""
    if value <= 1:
        return 1
    scale = int(10 ** math.floor(math.log10(value)))
    return next(step * scale for step in (1, 2, 5, 10) if step * scale >= value)


def _number(value: int) -> str:
    return formats.number_format(value, force_grouping=True)


def _time(moment: datetime) -> str:
    return dateformat.format(timezone.localtime(moment), "H:i")


def _px(value: float) -> str:
    return f"{value:.1f}"


def _height(value: int, scale: int) -> float:
    if not value:
        return 0.0
    return max(MIN_HEIGHT, value / scale * (BOTTOM - TOP))


def summary(data: Series, due_now: int | None, estimated: bool = False) -> str:
    """One line: "1,234 done, 5 failed in the last hour; 250 due now"."""
    text = gettext("%(done)s done, %(failed)s failed in the last hour") % {
        "done": _number(data.succeeded),
        "failed": _number(data.failed),
    }
    if due_now is None:
        return text
    due = ("≈\u202f" if estimated else "") + _number(due_now)
    return gettext("%(counts)s; %(due)s due now") % {"counts": text, "due": due}


def _minute_title(minute: Minute) -> str:
    if minute.depth is None:
        due = gettext("due tasks not counted")
    else:
        due = gettext("%(count)s due") % {"count": _number(minute.depth)}
    return gettext("%(time)s: %(done)s done, %(failed)s failed, %(due)s") % {
        "time": _time(minute.start),
        "done": _number(minute.succeeded),
        "failed": _number(minute.failed),
        "due": due,
    }


def _depth_path(points: list[tuple[float, float] | None]) -> tuple[str, list[tuple[str, str]]]:
    """The depth line as an SVG path that breaks at the minutes without a count, and
    the minutes with no neighbour to join, drawn as dots."""
    commands: list[str] = []
    dots: list[tuple[str, str]] = []
    for index, point in enumerate(points):
        if point is None:
            continue
        x, y = _px(point[0]), _px(point[1])
        joined = index > 0 and points[index - 1] is not None
        if joined or (index + 1 < len(points) and points[index + 1] is not None):
            commands.append(f"{'L' if joined else 'M'}{x},{y}")
        else:
            dots.append((x, y))
    return " ".join(commands), dots


def drawing(data: Series, due_now: int | None = None, estimated: bool = False) -> dict[str, Any]:
    """What the template draws: bars, the depth line, axes and labels, in SVG units."""
    slot = (RIGHT - LEFT) / len(data.minutes)
    bar_width = slot * BAR_SHARE
    count_scale = nice_ceiling(max(m.succeeded + m.failed for m in data.minutes))
    depths = [m.depth for m in data.minutes if m.depth is not None]
    depth_scale = nice_ceiling(max(depths, default=0))
    minutes: list[dict[str, Any]] = []
    points: list[tuple[float, float] | None] = []
    ticks: list[dict[str, str]] = []
    for index, minute in enumerate(data.minutes):
        left = LEFT + index * slot
        done = _height(minute.succeeded, count_scale)
        failed = _height(minute.failed, count_scale)
        minutes.append(
            {
                "x": _px(left),
                "width": _px(slot),
                "bar_x": _px(left + (slot - bar_width) / 2),
                "bar_width": _px(bar_width),
                "succeeded": minute.succeeded,
                "failed": minute.failed,
                "done_y": _px(BOTTOM - done),
                "done_height": _px(done),
                "failed_y": _px(BOTTOM - done - failed),
                "failed_height": _px(failed),
                "title": _minute_title(minute),
            }
        )
        if minute.depth is None:
            points.append(None)
        else:
            height = minute.depth / depth_scale * (BOTTOM - TOP)
            points.append((left + slot / 2, BOTTOM - height))
        if timezone.localtime(minute.start).minute % LABEL_EVERY == 0:
            ticks.append({"x": _px(left), "label": _time(minute.start)})
    path, dots = _depth_path(points)
    middle = (TOP + BOTTOM) / 2
    count_labels = [(BOTTOM, 0), (TOP, count_scale)]
    depth_labels = [(BOTTOM, 0), (TOP, depth_scale)]
    if count_scale % 2 == 0:
        count_labels.insert(1, (middle, count_scale // 2))
    if depth_scale % 2 == 0:
        depth_labels.insert(1, (middle, depth_scale // 2))
    text = summary(data, due_now, estimated)
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": _px(LEFT),
        "right": _px(RIGHT),
        "top": _px(TOP),
        "bottom": _px(BOTTOM),
        "minutes": minutes,
        "depth_path": path,
        "depth_dots": [{"x": x, "y": y} for x, y in dots],
        "has_depth": bool(depths),
        "ticks": ticks,
        "plot_height": _px(BOTTOM - TOP),
        "tick_y2": _px(BOTTOM + 4),
        "tick_label_y": _px(BOTTOM + 18),
        "count_labels": [{"y": _px(y), "label": _number(v)} for y, v in count_labels],
        "depth_labels": [{"y": _px(y), "label": _number(v)} for y, v in depth_labels],
        "count_label_x": _px(LEFT - 6),
        "depth_label_x": _px(RIGHT + 6),
        "summary": text,
        "description": gettext(
            "%(summary)s. Bars: tasks done per minute, failed ones in red on top (left "
            "scale, up to %(count_scale)s a minute). Line: due tasks (right scale, up to "
            "%(depth_scale)s). From %(start)s to %(end)s."
        )
        % {
            "summary": text,
            "count_scale": _number(count_scale),
            "depth_scale": _number(depth_scale),
            "start": _time(data.minutes[0].start),
            "end": _time(data.minutes[-1].start),
        },
    }
