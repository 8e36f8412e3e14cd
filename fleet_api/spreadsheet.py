"""CSV cells a spreadsheet will not run as a formula (OWASP, "CSV Injection").

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is read as a
formula by Excel, LibreOffice and Google Sheets; a metric name or an epoch comes from a
box in a public place. Such text gets a leading single quote, which the spreadsheet
shows as text. Numbers the fleet itself formats (a negative reading, say) stay numbers:
"-3.5" written from a float is a number to every spreadsheet, not a formula.
"""

from typing import Any, Iterable, List

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def safe_row(values: Iterable[Any]) -> List[Any]:
    return [safe_cell(v) for v in values]
