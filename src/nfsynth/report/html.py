"""Building blocks of the self-contained HTML report: sections, inline figures, tables.

Figures are matplotlib figures rendered to PNG and inlined as base64 ``data:`` URIs; the page
has inline CSS, no scripts and no network fetches, so it opens offline.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:28px;margin:8px 0 4px} h2{font-size:22px;border-bottom:2px solid #d8dde6;padding-bottom:4px;margin-top:40px}
h3{font-size:17px;margin-top:26px} p.note{color:#555;font-size:14px}
nav{background:#fff;border:1px solid #d8dde6;border-radius:6px;padding:8px 16px;margin:16px 0}
nav ol{margin:4px 0;padding-left:22px} nav a{color:#2453a6;text-decoration:none}
table{border-collapse:collapse;margin:10px 0 18px;font-size:13px;background:#fff}
th,td{border:1px solid #d8dde6;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#eef1f6;position:sticky;top:0} td.l,th.l{text-align:left}
td.best{background:#dff3e3;font-weight:600} td.ref{color:#666;font-style:italic}
figure{margin:12px 0 22px;background:#fff;border:1px solid #e3e7ee;border-radius:6px;padding:8px;display:inline-block;max-width:100%}
figure img{max-width:100%;height:auto} figcaption{font-size:13px;color:#444;margin-top:4px;max-width:1000px}
.scroll{overflow-x:auto;max-width:100%}
"""


def fig_to_img(fig: plt.Figure, alt: str) -> str:
    """An ``<img>`` tag holding the figure as an inline base64 PNG; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def figure(fig: plt.Figure, caption: str) -> str:
    """A captioned inline figure."""
    return f"<figure>{fig_to_img(fig, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def fmt_number(value: object) -> str:
    """Numbers for people: integers with thousands separators, floats to 4 significant digits."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if v == int(v) and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    return str(value)


def table(
    df: pd.DataFrame,
    *,
    caption: str | None = None,
    cell_class: Callable[[int, str], str] | None = None,
    formatters: dict[str, Callable[[object], str]] | None = None,
    index: bool = False,
) -> str:
    """An HTML table of ``df``; ``cell_class(row, column)`` may add a CSS class to a cell.

    Text columns are left-aligned. Raises ``ValueError`` on an empty frame: a report table
    always has rows.
    """
    if len(df) == 0:
        raise ValueError(f"table {caption or ''!r} has no rows")
    frame = df.reset_index() if index else df
    formatters = formatters or {}
    head = "".join(
        f'<th class="{"l" if not _numeric(frame[c]) else ""}">{html.escape(str(c))}</th>'
        for c in frame.columns
    )
    rows = []
    for i, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for c in frame.columns:
            classes = [] if _numeric(frame[c]) else ["l"]
            if cell_class is not None:
                extra = cell_class(i, str(c))
                if extra:
                    classes.append(extra)
            fmt = formatters.get(str(c), fmt_number)
            cells.append(f'<td class="{" ".join(classes)}">{html.escape(fmt(row[c]))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def paragraph(text: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f"<p{klass}>{html.escape(text)}</p>"


@dataclass
class Section:
    """One report section: an anchor id, a title and its HTML body parts."""

    id: str
    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, *parts: str) -> Section:
        self.parts.extend(parts)
        return self

    def heading(self, text: str) -> Section:
        return self.add(f"<h3>{html.escape(text)}</h3>")


def page(title: str, sections: Sequence[Section], subtitle: str = "") -> str:
    """The whole page: title, table of contents and sections."""
    toc = "".join(f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{"".join(s.parts)}</section>'
        for s in sections
    )
    sub = paragraph(subtitle, "note") if subtitle else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1>{sub}<nav><strong>Contents</strong><ol>{toc}</ol></nav>"
        f"{body}</main></body></html>"
    )
