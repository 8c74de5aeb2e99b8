"""Self-contained HTML pages for `snakemake --report`: the result tables and the run's config.

Snakemake's report offers CSV files only as downloads and does not show configuration files,
so these two pages carry them into the report as rendered HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

STYLE = """<style>
body { font-family: sans-serif; margin: 1.5em; color: #1e293b; }
table { border-collapse: collapse; margin: 0.5em 0 2em; font-size: 0.9em; }
th, td { border: 1px solid #cbd5e1; padding: 0.25em 0.6em; text-align: right; }
th { background: #f1f5f9; } td:first-child, th:first-child { text-align: left; }
pre { background: #f8fafc; border: 1px solid #cbd5e1; padding: 1em; }
</style>"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title>{STYLE}</head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>\n")


def tables_page(tables: Sequence[str | Path], captions: Mapping[str, str]) -> str:
    """Every table as an HTML table under its file name and caption, numbers to 4 places."""
    sections = []
    for path in map(Path, tables):
        frame = pd.read_csv(path)
        caption = captions.get(path.name, "")
        body = (frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", na_rep="",
                              classes="result-table", table_id=path.stem)
                if len(frame) else "<p><em>No rows: no dataset of this run feeds it.</em></p>")
        sections.append(f"<h2>{html.escape(path.name)}</h2>\n<p>{html.escape(caption)}</p>\n"
                        f"{body}")
    return _page("Result tables", "\n".join(sections))


def config_page(config: Mapping[str, Any], configfiles: Sequence[str]) -> str:
    """The run's merged, validated configuration as YAML, and the files it came from."""
    files = "".join(f"<li><code>{html.escape(f)}</code></li>" for f in configfiles)
    text = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)
    return _page("Configuration of this run",
                 f"<p>Merged from, in order:</p><ul>{files}</ul>\n"
                 f"<pre id='config'>{html.escape(text)}</pre>")
