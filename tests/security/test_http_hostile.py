"""The fleet's HTTP API under hostile input, against a real fleet and broker, on SQLite
and PostgreSQL (issue 16, item 8).

Each reproduction of the issue is a test: out-of-range query values and NaN in bodies
answer 422 (they gave 500), a 50 MB body is refused with 413 before it is read (it gave
a 422 echoing it at six times its size), tags are bounded, a 422 carries only excerpts,
and deleting a device while the broker is down is pending, then finished, never a 500.
The property tests (hypothesis) then throw integers of any size, dates of every year and
offset, every float and long strings and lists at the parameters: zero 5xx.
"""

import json
import operator
import socket
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_api.broker.accounts import verify_hash
from testbed.harness import Fleet, wait_until
from testbed.mqtt import Client

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
HOSTILE = settings(max_examples=150, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])


def _post_raw(api: httpx.Client, method: str, path: str, body: str) -> httpx.Response:
    """JSON text as a hostile client writes it: NaN, Infinity and lone surrogates too."""
    return api.request(method, path, content=body.encode(),
                       headers={"content-type": "application/json"})


def _no_server_error(resp: httpx.Response) -> None:
    assert resp.status_code < 500, f"{resp.request.method} {resp.request.url}: " \
                                   f"{resp.status_code} {resp.text[:300]}"
    if resp.status_code == 422:
        assert len(resp.content) < 8192, f"a 422 of {len(resp.content)} bytes"


def _no_traceback(fleet: Fleet) -> None:
    assert "Traceback" not in fleet.process.output(), fleet.process.output()[-3000:]


def _peak_rss_kib(fleet: Fleet) -> int:
    assert fleet.process.proc is not None
    status = open(f"/proc/{fleet.process.proc.pid}/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


# -- reproductions --------------------------------------------------------------------------

OUT_OF_RANGE: List[Tuple[str, Dict[str, Any], str]] = [
    ("/api/v1/devices", {"offset": 2**64}, "offset"),
    ("/api/v1/devices", {"offset": 2**63}, "offset"),
    ("/api/v1/devices", {"offset": -1}, "offset"),
    ("/api/v1/devices", {"limit": 2**64}, "limit"),
    ("/api/v1/claims", {"offset": 2**64}, "offset"),
    ("/api/v1/alerts/18446744073709551616", {}, "alert_id"),
    ("/api/v1/devices/box-1/telemetry", {"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ("/api/v1/devices/box-1/telemetry", {"until": "9999-12-31T23:00:00-05:00"}, "until"),
    ("/api/v1/devices/box-1/telemetry", {"since": "1969-12-31T23:59:59Z"}, "since"),
    ("/api/v1/devices/box-1/telemetry.csv", {"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ("/api/v1/devices/box-1/rollups", {"until": "9999-12-31T23:00:00-05:00"}, "until"),
    ("/api/v1/devices", {"tier": "NaN"}, "tier"),
    ("/api/v1/devices", {"tier": "inf"}, "tier"),
    ("/api/v1/reports/upgrade", {"days": "nan"}, "days"),
    ("/api/v1/devices", {"district": "x" * 5000}, "district"),
]


def test_out_of_range_query_values_are_422_saying_which(fleet: Fleet) -> None:
    fleet.register("box-1")
    with fleet.api() as api:
        for path, params, name in OUT_OF_RANGE:
            resp = api.get(path, params=params)
            assert resp.status_code == 422, (path, params, resp.status_code, resp.text[:300])
            assert name in [e["loc"][-1] for e in resp.json()["detail"]], resp.text
        year1 = api.get("/api/v1/devices/box-1/telemetry",
                        params={"since": "0001-01-01T00:00:00+05:00"}).json()
        assert "1970-9998" in year1["detail"][0]["msg"]
        # The edges themselves are fine.
        assert api.get("/api/v1/devices", params={"offset": 2**31 - 1}).status_code == 200
        assert api.get("/api/v1/devices/box-1/telemetry", params={
            "since": "1970-01-01T00:00:00Z", "until": "9998-12-31T23:59:59Z"}
            ).status_code == 200
    _no_traceback(fleet)


NAN_BODIES = [
    ("POST", "/api/v1/devices", '{"device_id": "nan-1", "site": "s", "kind": "wifi", '
                                '"district": "d", "lat": NaN, "lon": 1}'),
    ("POST", "/api/v1/devices", '{"device_id": "nan-2", "site": "s", "kind": "wifi", '
                                '"district": "d", "lat": 1, "lon": -Infinity}'),
    ("POST", "/api/v1/tiers", '{"mbps": NaN, "down_mbps": 1, "up_mbps": 1}'),
    ("PUT", "/api/v1/devices/box-1/tier", '{"mbps": Infinity}'),
    ("PUT", "/api/v1/groups/g1", '{"thresholds": {"pm2_5": NaN}}'),
    ("PUT", "/api/v1/groups/g1", '{"template": {"publish": {"sample_interval_s": NaN}}}'),
    ("PUT", "/api/v1/devices/box-1/config",
     '{"desired": {"publish": {"sample_interval_s": Infinity}}, "version": 0}'),
    ("POST", "/api/v1/devices/box-1/commands", '{"name": "self_test", "args": {"x": [NaN]}}'),
    ("POST", "/api/v1/devices/box-1/credentials/rotate", '{"reconnect_after_s": NaN}'),
    ("POST", "/api/v1/updates/rollouts", '{"version": "1", "url": "https://x.example/a", '
                                         '"waves": [NaN, 1]}'),
]


def test_nan_and_infinity_in_bodies_are_422(fleet: Fleet) -> None:
    fleet.register("box-1")
    with fleet.api() as api:
        for method, path, body in NAN_BODIES:
            resp = _post_raw(api, method, path, body)
            assert resp.status_code == 422, (path, body, resp.status_code, resp.text[:300])
            assert "finite" in resp.text, resp.text
        assert api.get("/api/v1/devices/nan-1").status_code == 404
        assert api.get("/api/v1/groups/g1").status_code == 404
        # Nesting the encoder cannot write is refused as well.
        deep = '{"name": "self_test", "args": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"
        assert _post_raw(api, "POST", "/api/v1/devices/box-1/commands", deep
                         ).status_code in (400, 422)
    _no_traceback(fleet)


def test_a_50_mb_body_is_refused_before_it_is_read(fleet: Fleet) -> None:
    huge = b'{"devices": "' + b"x" * (50 * MIB) + b'"}'
    before = _peak_rss_kib(fleet)
    with fleet.api() as api:
        resp = api.post("/api/v1/devices/bulk", content=huge,
                        headers={"content-type": "application/json"}, timeout=60)
        assert resp.status_code == 413, resp.text[:300]
        assert len(resp.content) < 1024
        resp = api.post("/api/v1/devices", content=huge,
                        headers={"content-type": "application/json"}, timeout=60)
        assert resp.status_code == 413, resp.text[:300]
    grown_mib = (_peak_rss_kib(fleet) - before) / 1024
    print(f"peak RSS growth over two 50 MB bodies: {grown_mib:.1f} MiB")
    assert grown_mib < 16, f"the fleet's peak RSS grew {grown_mib:.1f} MiB"

    # Refused on the Content-Length alone: the answer comes before a byte of the body.
    with socket.create_connection(("127.0.0.1", fleet.port), timeout=10) as sock:
        sock.sendall(f"POST /api/v1/devices HTTP/1.1\r\nHost: fleet\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {50 * MIB}\r\n"
                     f"Authorization: Bearer {fleet.token}\r\n\r\n".encode())
        assert sock.recv(200).startswith(b"HTTP/1.1 413 ")

    # A chunked body (no Content-Length) is counted as it streams in.
    def chunks() -> Any:
        for _ in range(4):
            yield b" " * (MIB // 2)
        yield b"{}"

    with fleet.api() as api:
        resp = api.post("/api/v1/devices", content=chunks(),
                        headers={"content-type": "application/json"})
    assert resp.status_code == 413, resp.text[:300]
    assert "1 MiB" in resp.json()["detail"]
    _no_traceback(fleet)


def test_bulk_registration_takes_more_than_1_mib(fleet: Fleet) -> None:
    items = [{"device_id": f"bulk-{i:04d}", "site": f"Taman {i} " + "x" * 180, "kind": "wifi",
              "district": "Kota Timur", "lat": -6.1, "lon": 106.9, "tags": ["park"]}
             for i in range(4000)]
    body = json.dumps({"devices": items})
    assert len(body) > MIB
    with fleet.api() as api:
        resp = _post_raw(api, "POST", "/api/v1/devices/bulk", body)
        assert resp.status_code == 201, resp.text[:300]
        assert resp.json()["count"] == 4000
        # ... and only it: the same size elsewhere is over the cap.
        assert _post_raw(api, "POST", "/api/v1/devices", body).status_code == 413


def test_tags_are_bounded_in_count_and_size(fleet: Fleet) -> None:
    base = {"site": "Halte", "kind": "sensor", "district": "Kota Barat", "lat": -6.2,
            "lon": 106.8}
    with fleet.api() as api:
        full = api.post("/api/v1/devices", json={**base, "device_id": "tags-1",
                                                 "tags": ["t" * 64] * 32})
        assert full.status_code == 201, full.text
        for tags in (["t"] * 33, ["t" * 65], ["x" * 300_000] * 3, [""]):
            resp = api.post("/api/v1/devices", json={**base, "device_id": "tags-2",
                                                     "tags": tags})
            assert resp.status_code in (413, 422), resp.text[:300]
            assert len(resp.content) < 4096
        assert api.get("/api/v1/devices/tags-2").status_code == 404


def test_a_422_echoes_only_an_excerpt(fleet: Fleet) -> None:
    long_site = "s" * 900_000
    with fleet.api() as api:
        resp = api.post("/api/v1/devices", json={
            "device_id": "x-1", "site": long_site, "kind": "wifi", "district": "d",
            "lat": 0, "lon": 0})
        assert resp.status_code == 422
        assert len(resp.content) < 1024, len(resp.content)
        error = resp.json()["detail"][0]
        assert error["loc"] == ["body", "site"]
        assert error["input"].endswith("(900000 characters)")
        # Ten thousand bad devices: twenty errors and a count of the rest.
        bad = [{"device_id": "X" * 63, "site": "s", "kind": "wifi", "district": "d",
                "lat": 0, "lon": 0}] * 10000
        resp = api.post("/api/v1/devices/bulk", json={"devices": bad}, timeout=60)
        assert resp.status_code == 422
        assert len(resp.json()["detail"]) == 20
        assert resp.json()["more_errors"] == 9980
        assert len(resp.content) < 16384


def test_delete_while_the_broker_is_down_is_pending_then_finished(fleet: Fleet) -> None:
    password = fleet.register("park-1")["mqtt"]["password"]
    fleet.register("park-2")
    passwd = fleet.broker.data / "passwd"
    fleet.broker.stop()
    with fleet.api() as api:
        resp = api.delete("/api/v1/devices/park-1")
        assert resp.status_code == 202, resp.text
        assert resp.json()["deregistration"] == "pending"
        assert api.get("/api/v1/devices/park-1").json()["deregistration"] == "pending"
        assert api.get("/api/v1/devices/park-2").json()["deregistration"] is None
        assert api.delete("/api/v1/devices/park-1").status_code == 202  # asked again
        rotate = api.post("/api/v1/devices/park-1/credentials/rotate")
        assert rotate.status_code == 409, rotate.text
    # Locked out already: no password the box knows is in the broker's file.
    line = next(ln for ln in passwd.read_text().splitlines() if ln.startswith("park-1:"))
    assert not verify_hash(password, line.split(":", 1)[1])

    fleet.broker.start()
    with fleet.api() as api:
        wait_until(lambda: api.get("/api/v1/devices/park-1").status_code == 404, 60,
                   what="the worker to finish the deregistration")
        assert api.get("/api/v1/devices/park-2").status_code == 200
        audit = api.get("/api/v1/audit", params={"action": "device.delete"}).json()["data"]
    assert {a["target"] for a in audit} == {"park-1"}
    wait_until(lambda: "park-1:" not in passwd.read_text(), 10, what="the account removed")
    box = Client(fleet.broker.port, "park-1", password)
    assert box.connack is not None and box.connack.is_failure
    box.c.loop_stop()
    _no_traceback(fleet)


# -- properties: zero 5xx ---------------------------------------------------------------------

INTEGERS = (st.integers() | st.integers(min_value=2**62, max_value=2**70)
            | st.integers(min_value=-(2**70), max_value=-(2**62))
            | st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]))
INT_QUERIES = [
    ("/api/v1/devices", "offset"), ("/api/v1/devices", "limit"), ("/api/v1/claims", "offset"),
    ("/api/v1/claims", "limit"), ("/api/v1/devices/box-1/telemetry", "limit"),
    ("/api/v1/devices/box-1/telemetry.csv", "limit"), ("/api/v1/devices/box-1/rollups", "limit"),
    ("/api/v1/devices/box-1/rejects", "limit"), ("/api/v1/devices/box-1/commands", "limit"),
    ("/api/v1/alerts", "limit"), ("/api/v1/audit", "limit"), ("/api/v1/updates/rollouts", "limit"),
    ("/api/v1/webhooks/1/deliveries", "limit"),
]
INT_PATHS = ["/api/v1/alerts/{}", "/api/v1/rollouts/{}", "/api/v1/updates/rollouts/{}",
             "/api/v1/webhooks/{}/deliveries", "/api/v1/tokens/{}"]


def test_integers_of_any_size(fleet: Fleet) -> None:
    fleet.register("box-1")
    with fleet.api() as api:
        @HOSTILE
        @given(where=st.sampled_from(INT_QUERIES), path=st.sampled_from(INT_PATHS),
               value=INTEGERS)
        def check(where: Any, path: str, value: int) -> None:
            url, name = where
            _no_server_error(api.get(url, params={name: value}))
            method = "DELETE" if path.startswith("/api/v1/tokens") and value != 1 else "GET"
            _no_server_error(api.request(method, path.format(value)))
            _no_server_error(api.put("/api/v1/devices/box-1/config",
                                     json={"desired": {}, "version": value}))
            _no_server_error(api.put("/api/v1/groups/g1", json={
                "rollout": {"stage_size": value}}))

        check()
    _no_traceback(fleet)


OFFSETS: Any = st.timedeltas(min_value=-timedelta(hours=23, minutes=59),
                        max_value=timedelta(hours=23, minutes=59)).map(
    lambda d: timezone(timedelta(minutes=int(d.total_seconds() // 60))))
DATES = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                     timezones=st.none() | st.just(timezone.utc) | OFFSETS)  # type: ignore[arg-type]
ISO_TEXT = st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}"
                         r"(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?\Z")
DATE_ROUTES = ["/api/v1/devices/box-1/telemetry", "/api/v1/devices/box-1/telemetry.csv",
               "/api/v1/devices/box-1/rollups"]


def _storable(value: datetime) -> bool:
    try:
        utc = value.astimezone(timezone.utc) if value.tzinfo else value
    except OverflowError:
        return False
    return 1970 <= utc.year <= 9998


def test_dates_of_every_year_and_offset(fleet: Fleet) -> None:
    fleet.register("box-1")
    with fleet.api() as api:
        @HOSTILE
        @given(route=st.sampled_from(DATE_ROUTES), name=st.sampled_from(["since", "until"]),
               when=DATES, text=ISO_TEXT)
        def check(route: str, name: str, when: datetime, text: str) -> None:
            resp = api.get(route, params={name: when.isoformat()})
            _no_server_error(resp)
            assert resp.status_code == (200 if _storable(when) else 422), \
                (when.isoformat(), resp.text[:300])
            _no_server_error(api.get(route, params={name: text}))

        check()
    _no_traceback(fleet)


FLOATS = st.floats() | st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308,
                                        -0.0, 5e-324])
_ids = count()


def test_every_float(fleet: Fleet) -> None:
    fleet.register("box-1")
    with fleet.api() as api:
        @HOSTILE
        @given(x=FLOATS, y=FLOATS)
        def check(x: float, y: float) -> None:
            calls = [
                ("POST", "/api/v1/devices", {"device_id": f"f-{next(_ids)}", "site": "s",
                                             "kind": "sensor", "district": "d",
                                             "lat": x, "lon": y}),
                ("POST", "/api/v1/tiers", {"mbps": x, "down_mbps": y, "up_mbps": 10}),
                ("PUT", "/api/v1/devices/box-1/tier", {"mbps": x}),
                ("PUT", "/api/v1/groups/g1", {"thresholds": {"pm2_5": x},
                                              "template": {"tier": {"down_mbps": y}}}),
                ("POST", "/api/v1/devices/box-1/commands", {"name": "self_test",
                                                            "args": {"x": x},
                                                            "timeout_s": y}),
                ("POST", "/api/v1/claims/AAAA-BBBB-CCCC", {"lat": x, "lon": y}),
            ]
            for method, path, body in calls:
                _no_server_error(_post_raw(api, method, path, json.dumps(body)))
            _no_server_error(api.get("/api/v1/devices", params={"tier": repr(x)}))
            _no_server_error(api.get("/api/v1/reports/upgrade", params={"days": repr(y)}))

        check()
        for dev in api.get("/api/v1/devices").json()["data"]:
            assert dev["lat"] == dev["lat"] and abs(dev["lat"]) <= 90  # finite, in range
    _no_traceback(fleet)


SHORT = st.text(alphabet=st.characters() | st.sampled_from(["\ud800", "\x00", "\r", "="]),
                max_size=120)
LONG = st.builds(operator.mul, st.sampled_from(["x", "\u00e9", "=", "\u4e00", "\\"]),
                 st.integers(min_value=60, max_value=200_000))
TEXT = SHORT | LONG
TAGS = st.lists(TEXT, max_size=40)


def _in_url(text: str) -> str:
    """What a URL can carry of it: no lone surrogates, everything else escaped, and no
    longer than the request line a server reads (h11 stops at 16 KiB)."""
    return quote("".join(c for c in text[:2000] if not "\ud800" <= c <= "\udfff"), safe="")


def test_long_strings_and_lists(fleet: Fleet) -> None:
    with fleet.api() as api:
        @HOSTILE
        @given(site=TEXT, district=TEXT, tags=TAGS, query=TEXT)
        def check(site: str, district: str, tags: Any, query: str) -> None:
            body: Dict[str, Optional[Any]] = {
                "device_id": f"s-{next(_ids)}", "site": site, "kind": "wifi",
                "district": district, "lat": 0, "lon": 0, "tags": tags}
            _no_server_error(_post_raw(api, "POST", "/api/v1/devices", json.dumps(body)))
            _no_server_error(_post_raw(api, "POST", "/api/v1/webhooks", json.dumps(
                {"name": site, "url": "https://x.example/h", "categories": ["flood"]})))
            for name in ("district", "target"):
                _no_server_error(api.get(("/api/v1/devices" if name == "district"
                                          else "/api/v1/audit") + f"?{name}={_in_url(query)}"))
            _no_server_error(api.get("/api/v1/claims/" + _in_url(query)))

        check()
        for dev in api.get("/api/v1/devices").json()["data"]:
            assert len(dev["tags"]) <= 32 and all(len(t) <= 64 for t in dev["tags"])
    _no_traceback(fleet)
