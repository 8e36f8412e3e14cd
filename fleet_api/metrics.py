"""Prometheus metrics of the fleet service."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_INGESTED = Counter("simpul_ingest_messages_total", "MQTT messages ingested")
RECORDS_STORED = Counter("simpul_ingest_records_stored_total", "records newly stored")
PAYLOADS_REJECTED = Counter("simpul_ingest_rejected_total", "payloads refused by ingest")
INGEST_DB_ERRORS = Counter("simpul_ingest_db_errors_total", "failed ingest commits")
DEVICES_ONLINE = Gauge("simpul_devices_online", "devices online at the last list")
HTTP_LATENCY = Histogram("simpul_http_request_seconds", "HTTP request latency", ["route"])
