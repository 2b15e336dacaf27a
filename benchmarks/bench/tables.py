"""Markdown table helpers shared by the report's sections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Results = dict[str, Any]


def num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def ratio(a: Any, b: Any) -> str:
    return f"{a / b:.2f}" if a and b else "—"


def figure(results: Results | None, row_id: str, key: str = "rate") -> Any:
    if results is None:
        return None
    return results.get("rows", {}).get(row_id, {}).get(key)


def simple(title: str, intro: str, columns: list[str], body: list[str]) -> list[str]:
    if not body:
        return []
    return [
        f"## {title}",
        "",
        intro,
        "",
        "| " + " | ".join(columns) + " |",
        "|---|" + "---:|" * (len(columns) - 1),
        *body,
        "",
    ]


def section_rows(results: Results, section: str) -> dict[str, Any]:
    return {k: v for k, v in results["rows"].items() if v["row"]["section"] == section}


def by_section(
    results: Results,
    baseline: Results | None,
    section: str,
    cells: Callable[[dict[str, Any], Any], list[str]],
) -> list[str]:
    return [
        "| "
        + " | ".join([f["row"]["label"], *cells(f, (baseline or {}).get("rows", {}).get(row_id))])
        + " |"
        for row_id, f in section_rows(results, section).items()
    ]
