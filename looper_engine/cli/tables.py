"""Tables that stay readable wherever they land: a terminal of any width, or a pipe (which
rich lays out at 80 columns). A table that fits is printed as it is; one that does not is
printed one record per row, as "column value" pairs that wrap between fields and never
inside one, so an episode id or a path is never cut or ellipsised."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


def print_table(console: Console, table: Table) -> None:
    natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if natural <= console.width:
        console.print(table)
        return
    if table.title:
        console.print(Text(str(table.title), style="bold"))
    headers = [str(column.header) for column in table.columns]
    columns = [list(column.cells) for column in table.columns]
    for row in range(table.row_count):
        fields = []
        for header, cells in zip(headers, columns, strict=True):
            cell = cells[row]
            value = cell if isinstance(cell, Text) else Text(str(cell))
            if value.plain:
                fields.append(Text.assemble((header, "dim"), " ", value))
        line = Text("  ").join(fields)
        # Wrap only at the spaces between fields: a value stays whole.
        console.print(line, no_wrap=False, overflow="fold", soft_wrap=False)
