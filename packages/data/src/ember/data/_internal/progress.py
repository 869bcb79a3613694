"""Progress bars, one per operator (tqdm), shown only on a terminal unless forced."""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["ProgressBar", "progress_enabled"]


def progress_enabled(ctx: Any) -> bool:
    if not ctx.enable_progress_bars:
        return False
    if ctx.progress_bars_force_tty:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """A tqdm bar counting an operator's output blocks and rows; a no-op when disabled."""

    def __init__(self, name: str, total: int | None, *, position: int, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm
            self._bar = tqdm(total=total, desc=f"- {name}", position=position, unit=" blocks",
                             leave=True, dynamic_ncols=True, file=sys.stderr)
        self.rows = 0

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def update(self, blocks: int, rows: int) -> None:
        self.rows += rows
        if self._bar is not None:
            self._bar.update(blocks)
            self._bar.set_postfix_str(f"{self.rows} rows", refresh=False)

    def set_total(self, total: int) -> None:
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
