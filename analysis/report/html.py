"""A self-contained HTML page: inline CSS, PNG figures as data URIs, no scripts, no external links."""

from __future__ import annotations

import base64
import html
import math

import pandas as pd

__all__ = ["Section", "page", "image", "table", "para", "note", "esc"]

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#243447;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#c9d6e3;font-size:13px}
nav{background:#fff;border-bottom:1px solid #ddd;padding:8px 32px;position:sticky;top:0}
nav a{margin-right:16px;color:#243447;text-decoration:none;font-size:14px}
main{padding:8px 32px 48px;max-width:1300px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px 20px 16px;margin:18px 0}
h2{font-size:18px;border-bottom:1px solid #eee;padding-bottom:6px} h3{font-size:15px;margin-bottom:4px}
table{border-collapse:collapse;font-size:12px;margin:8px 0;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f2f4f7} td.text,th.text{text-align:left}
img{max-width:100%;height:auto;display:block;margin:8px 0}
.note{color:#555;font-size:13px} .warn{background:#fff4e5;border-left:4px solid #f0a020;padding:6px 10px}
.verdict{font-size:15px;font-weight:600;padding:8px 12px;border-radius:4px;margin:8px 0}
.no{background:#fdecea;color:#8a1c13} .yes{background:#e7f5ea;color:#1b5e20} .maybe{background:#fff8e1;color:#6d4c00}
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


class Section:
    """One ``<section id=...>`` with a heading and HTML body parts."""

    def __init__(self, sid: str, title: str) -> None:
        self.id, self.title, self.parts = sid, title, []

    def add(self, fragment: str) -> Section:
        self.parts.append(fragment)
        return self

    def render(self) -> str:
        return f'<section id="{esc(self.id)}">\n<h2>{esc(self.title)}</h2>\n' + "\n".join(self.parts) + "\n</section>"


def para(text: str, cls: str | None = None) -> str:
    c = f' class="{esc(cls)}"' if cls else ""
    return f"<p{c}>{esc(text)}</p>"


def note(text: str) -> str:
    return para(text, "note")


def image(png_bytes: bytes | None, alt: str) -> str:
    if not png_bytes:
        return note(f"({alt}: nothing to plot)")
    data = base64.b64encode(png_bytes).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _cell(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def table(df: pd.DataFrame, max_rows: int = 400) -> str:
    """An escaped HTML table; text columns left-aligned."""
    if df is None or df.empty:
        return note("(empty table)")
    shown = df.head(max_rows)
    text_cols = {c for c in shown.columns if shown[c].dtype == object}
    head = "".join(f'<th class="{"text" if c in text_cols else ""}">{esc(c)}</th>' for c in shown.columns)
    body = []
    for row in shown.itertuples(index=False):
        cells = "".join(f'<td class="{"text" if c in text_cols else ""}">{esc(_cell(v))}</td>'
                        for c, v in zip(shown.columns, row))
        body.append(f"<tr>{cells}</tr>")
    more = note(f"({len(df) - max_rows} more rows in the CSV file)") if len(df) > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.render() for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>\n<nav>{nav}</nav>\n"
            f"<main>\n{body}\n</main>\n</body>\n</html>\n")
