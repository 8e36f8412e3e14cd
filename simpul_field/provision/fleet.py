"""The fleet API as the technician's laptop sees it: a few calls, and every failure
turned into one line that says what to do (see errors.py for the exit codes)."""

from typing import Any, Dict, List, Optional

import httpx

from simpul_field.provision.errors import (
    AuthError,
    ConflictError,
    FleetError,
    UnreachableError,
)

TIMEOUT_S = 20.0


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200] or resp.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        return f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
    return str(detail)


class FleetClient:
    def __init__(self, url: str, token: str, transport: Optional[httpx.BaseTransport] = None
                 ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=TIMEOUT_S, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "FleetClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, what: str, missing_ok: bool = False,
              **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise UnreachableError(f"the fleet at {self.url} did not answer in time "
                                   f"({what}); check the network and try again") from exc
        except httpx.HTTPError as exc:
            raise UnreachableError(f"cannot reach the fleet at {self.url} ({what}): {exc}; "
                                   "check the network, or prepare bundles in the office "
                                   "(simpul-field provision batch)") from exc
        if resp.status_code == 404 and missing_ok:
            return None
        if resp.status_code == 401:
            raise AuthError("the fleet refused the token (401): check SIMPUL_TOKEN or "
                            "--token-file")
        if resp.status_code == 403:
            raise AuthError(f"this token may not do that (403: {_detail(resp)}); "
                            "ask the office for a technician token")
        if resp.status_code == 409:
            raise ConflictError(f"{_detail(resp)} (409); pick another --device-id, or ask "
                                "the office to deregister the old one")
        if resp.status_code >= 400:
            raise FleetError(f"the fleet refused {what} (HTTP {resp.status_code}): "
                             f"{_detail(resp)}")
        return resp.json()

    # -- calls ------------------------------------------------------------------------
    def register(self, body: Dict[str, Any]) -> Dict[str, Any]:
        return dict(self._call("POST", "/api/v1/devices", "the registration", json=body))

    def issue_claim(self, device_id: str) -> Dict[str, Any]:
        return dict(self._call("POST", "/api/v1/claims", "a claim code",
                               json={"device_id": device_id}))

    def pre_register(self, count: int, kind: str, district: Optional[str], prefix: str,
                     tags: List[str]) -> List[Dict[str, Any]]:
        body: Dict[str, Any] = {"count": count, "kind": kind, "prefix": prefix, "tags": tags}
        if district:
            body["district"] = district
        return list(self._call("POST", "/api/v1/claims/batch", "the batch", json=body)["data"])

    def certificate(self, device_id: str, csr: str) -> Dict[str, Any]:
        return dict(self._call("POST", f"/api/v1/devices/{device_id}/certificate",
                               "the certificate", json={"csr": csr}))

    def device(self, device_id: str) -> Optional[Dict[str, Any]]:
        found = self._call("GET", f"/api/v1/devices/{device_id}", "the device",
                           missing_ok=True)
        return None if found is None else dict(found)

    def records(self, device_id: str, stream: str) -> int:
        body = self._call("GET", f"/api/v1/devices/{device_id}/telemetry", "telemetry",
                          params={"stream": stream, "limit": 1})
        return int(body.get("count", 0))

    def claim(self, code: str) -> Optional[Dict[str, Any]]:
        found = self._call("GET", f"/api/v1/claims/{code}", "the claim", missing_ok=True)
        return None if found is None else dict(found)
