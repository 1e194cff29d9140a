"""A progress bar on stderr for long exports and imports (nothing when not wanted)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress_bar(
    label: str, total: int, err: TextIO, enabled: bool
) -> Iterator[Callable[[int], None] | None]:
    """Yield `advance(n)`, or None when disabled (piped output, nothing to count)."""
    if not enabled or not total:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        label,
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(file=err),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
