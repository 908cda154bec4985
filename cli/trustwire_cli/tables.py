"""Plain-text tables and matrices for terminals: fixed-width columns, no colours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines) + "\n"


def matrix(keys: Sequence[str], cells: Mapping[tuple[str, str], str]) -> str:
    """Rows are sources, columns destinations, each column headed by its index."""
    width = max((len(k) for k in keys), default=0)
    idx_width = len(str(len(keys)))
    header = " " * (width + idx_width + 3) + " ".join(
        str(i + 1).rjust(idx_width) for i in range(len(keys))
    )
    lines = [header]
    for i, src in enumerate(keys):
        row = " ".join(cells.get((src, dst), "?").rjust(idx_width) for dst in keys)
        lines.append(f"{str(i + 1).rjust(idx_width)} {src.ljust(width)}  {row}")
    return "\n".join(lines) + "\n"
