"""The role matrix: for every endpoint under /api and every role, who may and who may not.

In process (FastAPI's TestClient) on both engines. The table must name every route the
application has, so a new endpoint cannot ship without its row here.
"""

import warnings
from typing import Dict, Iterator, Tuple

import pytest

from fleet_api.auth import ROLES, create_token
from fleet_api.db import make_engine, migrate
from fleet_api.deps import Services
from fleet_api.main import create_app
from fleet_api.settings import Settings

with warnings.catch_warnings():
    # starlette asks for `httpx2`; its TestClient works with httpx, which the fleet uses.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

V, T, OP, A = ROLES
MATRIX: Dict[Tuple[str, str], str] = {
    ("GET", "/api/v1/devices"): V,
    ("POST", "/api/v1/devices"): T,
    ("POST", "/api/v1/devices/bulk"): T,
    ("GET", "/api/v1/devices/{device_id}"): V,
    ("DELETE", "/api/v1/devices/{device_id}"): A,
    ("GET", "/api/v1/devices/{device_id}/telemetry"): V,
    ("GET", "/api/v1/devices/{device_id}/telemetry.csv"): V,
    ("GET", "/api/v1/devices/{device_id}/rejects"): V,
    ("GET", "/api/v1/devices/{device_id}/config"): V,
    ("PUT", "/api/v1/devices/{device_id}/config"): OP,
    ("PUT", "/api/v1/devices/{device_id}/tier"): OP,
    ("PUT", "/api/v1/devices/{device_id}/group"): OP,
    ("POST", "/api/v1/devices/{device_id}/commands"): T,
    ("GET", "/api/v1/devices/{device_id}/commands"): V,
    ("GET", "/api/v1/devices/{device_id}/commands/{command_id}"): V,
    ("POST", "/api/v1/devices/{device_id}/commands/{command_id}/retry"): T,
    ("GET", "/api/v1/tiers"): V,
    ("POST", "/api/v1/tiers"): OP,
    ("GET", "/api/v1/groups"): V,
    ("GET", "/api/v1/groups/{name}"): V,
    ("PUT", "/api/v1/groups/{name}"): OP,
    ("PUT", "/api/v1/groups/{name}/tier"): OP,
    ("GET", "/api/v1/rollouts"): V,
    ("GET", "/api/v1/rollouts/{rollout_id}"): V,
    ("GET", "/api/v1/me"): V,
    ("GET", "/api/v1/alerts"): V,
    ("GET", "/api/v1/alerts/{alert_id}"): V,
    ("POST", "/api/v1/alerts/{alert_id}/ack"): OP,
    ("GET", "/api/v1/events"): V,
    ("GET", "/api/v1/webhooks"): A,
    ("POST", "/api/v1/webhooks"): A,
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): A,
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"): A,
    ("GET", "/api/v1/audit"): A,
    ("GET", "/api/v1/tokens"): A,
    ("POST", "/api/v1/tokens"): A,
    ("DELETE", "/api/v1/tokens/{token_id}"): A,
    ("GET", "/api/v1/bridges"): A,
    ("POST", "/api/v1/bridges"): A,
    ("DELETE", "/api/v1/bridges/{name}"): A,
    ("POST", "/api/v1/claims/batch"): T,
    ("POST", "/api/v1/claims"): T,
    ("GET", "/api/v1/claims"): V,
    ("GET", "/api/v1/claims/{code}"): V,
    ("POST", "/api/v1/claims/{code}"): T,
    ("GET", "/api/v1/devices/{device_id}/rollups"): V,
    ("GET", "/api/v1/reports/upgrade"): V,
    ("POST", "/api/v1/devices/{device_id}/certificate"): T,
    ("POST", "/api/v1/devices/{device_id}/credentials/rotate"): OP,
    ("POST", "/api/v1/updates/rollouts"): OP,
    ("GET", "/api/v1/updates/rollouts"): V,
    ("GET", "/api/v1/updates/rollouts/{rollout_id}"): V,
}
PARAMS = {"device_id": "nobody", "command_id": "c0", "name": "nogroup", "rollout_id": "99999",
          "alert_id": "99999", "webhook_id": "99999", "token_id": "99999",
          "code": "AAAA-BBBB-CCCC"}
BODIES = {("POST", "/api/v1/devices/{device_id}/commands"): {"name": "self_test"},
          ("POST", "/api/v1/devices/{device_id}/certificate"): {"csr": "x"}}


@pytest.fixture
def client(db_url: str) -> Iterator[Tuple[TestClient, Dict[str, str]]]:
    engine = make_engine(db_url)
    migrate(engine)
    tokens = {role: create_token(engine, role, role) for role in ROLES}
    app = create_app(Services(engine=engine, settings=Settings(
        db_url=db_url, device_broker_url="mqtt://127.0.0.1:1883")))
    with TestClient(app) as c:
        yield c, tokens
    engine.dispose()


def call(c: TestClient, method: str, path: str, token: str) -> int:
    url = path.format(**PARAMS)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if path.endswith("/events"):
        with c.stream(method, url, headers=headers) as resp:
            return resp.status_code
    body = BODIES.get((method, path), {}) if method in ("POST", "PUT") else None
    return c.request(method, url, headers=headers, json=body).status_code


def test_every_route_is_in_the_matrix(client: Tuple[TestClient, Dict[str, str]]) -> None:
    c, _ = client
    paths = c.get("/openapi.json").json()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() if p.startswith("/api/")
              for m in ops}
    assert routes == set(MATRIX)


def test_role_matrix(client: Tuple[TestClient, Dict[str, str]]) -> None:
    c, tokens = client
    wrong = []
    for (method, path), needed in MATRIX.items():
        if call(c, method, path, "") != 401:
            wrong.append(f"{method} {path} without a token")
        for role in ROLES:
            status = call(c, method, path, tokens[role])
            allowed = ROLES.index(role) >= ROLES.index(needed)
            if allowed and status in (401, 403):
                wrong.append(f"{method} {path} refused {role} ({status})")
            if not allowed and status != 403:
                wrong.append(f"{method} {path} let {role} through ({status})")
    assert wrong == []


def test_technician_runs_field_commands_only(client: Tuple[TestClient, Dict[str, str]]
                                             ) -> None:
    c, tokens = client
    reg = c.post("/api/v1/devices", headers={"Authorization": f"Bearer {tokens[T]}"},
                 json={"device_id": "pos-1", "site": "Pos", "kind": "wifi",
                       "district": "Barat", "lat": 0, "lon": 0})
    assert reg.status_code == 201, reg.text
    for role, name, status in ((T, "diagnostic", 201), (T, "reboot", 403), (OP, "reboot", 201)):
        resp = c.post("/api/v1/devices/pos-1/commands", json={"name": name},
                      headers={"Authorization": f"Bearer {tokens[role]}"})
        assert resp.status_code == status, (role, name, resp.text)


def test_failed_sign_ins_are_rate_limited(client: Tuple[TestClient, Dict[str, str]]) -> None:
    c, tokens = client
    codes = [c.get("/api/v1/devices", headers={"Authorization": f"Bearer spl_wrong{i}"}
                   ).status_code for i in range(25)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
    # The address is refused even with a good token until the window passes.
    blocked = c.get("/api/v1/devices", headers={"Authorization": f"Bearer {tokens[A]}"})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
