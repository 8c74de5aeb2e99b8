"""Result tables as GitHub Markdown, and the rows of a table that belong to one dataset."""

from __future__ import annotations

from typing import Any

import pandas as pd


def dataset_rows(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The rows of a result table that belong to ``dataset`` (all rows of a table without a
    ``dataset`` column)."""
    if "dataset" not in table.columns:
        return table
    return table[table["dataset"] == dataset].reset_index(drop=True)


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub Markdown table; floats with ``digits`` decimals, missing values empty."""
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"
