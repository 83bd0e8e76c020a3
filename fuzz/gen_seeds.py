#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (no dependencies).

    python3 fuzz/gen_seeds.py            # from the repository root

Every request is written twice from one definition (OTLP/JSON dicts):
  seeds/otlp_json/<name>.json    the OTLP/JSON body, as a client sends it
  seeds/otlp_proto/<name>.pb     the same request, protobuf-encoded
plus a few hand-written JSON bodies exercising the decoder's leniencies
(snake_case names, numbers as strings, enum names, "NaN", base64 bytes).

Output is deterministic: fixed ids and timestamps, no randomness.
"""

import base64
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------------------
# A minimal protobuf encoder driven by a field table of the OTLP messages.
# ---------------------------------------------------------------------------

# message -> {lowerCamelCase json name: (tag, kind, sub-message)}
S = {
    "ExportTraceServiceRequest": {"resourceSpans": (1, "msg", "ResourceSpans")},
    "ExportMetricsServiceRequest": {"resourceMetrics": (1, "msg", "ResourceMetrics")},
    "ExportLogsServiceRequest": {"resourceLogs": (1, "msg", "ResourceLogs")},
    "Resource": {
        "attributes": (1, "msg", "KeyValue"),
        "droppedAttributesCount": (2, "uint32", None),
    },
    "InstrumentationScope": {
        "name": (1, "str", None),
        "version": (2, "str", None),
        "attributes": (3, "msg", "KeyValue"),
        "droppedAttributesCount": (4, "uint32", None),
    },
    "KeyValue": {"key": (1, "str", None), "value": (2, "msg", "AnyValue")},
    "AnyValue": {
        "stringValue": (1, "str", None),
        "boolValue": (2, "bool", None),
        "intValue": (3, "int64", None),
        "doubleValue": (4, "double", None),
        "arrayValue": (5, "msg", "ArrayValue"),
        "kvlistValue": (6, "msg", "KeyValueList"),
        "bytesValue": (7, "b64bytes", None),
    },
    "ArrayValue": {"values": (1, "msg", "AnyValue")},
    "KeyValueList": {"values": (1, "msg", "KeyValue")},
    # traces
    "ResourceSpans": {
        "resource": (1, "msg", "Resource"),
        "scopeSpans": (2, "msg", "ScopeSpans"),
        "schemaUrl": (3, "str", None),
    },
    "ScopeSpans": {
        "scope": (1, "msg", "InstrumentationScope"),
        "spans": (2, "msg", "Span"),
        "schemaUrl": (3, "str", None),
    },
    "Span": {
        "traceId": (1, "hexbytes", None),
        "spanId": (2, "hexbytes", None),
        "traceState": (3, "str", None),
        "parentSpanId": (4, "hexbytes", None),
        "flags": (16, "fixed32", None),
        "name": (5, "str", None),
        "kind": (6, "enum", None),
        "startTimeUnixNano": (7, "fixed64", None),
        "endTimeUnixNano": (8, "fixed64", None),
        "attributes": (9, "msg", "KeyValue"),
        "droppedAttributesCount": (10, "uint32", None),
        "events": (11, "msg", "Event"),
        "droppedEventsCount": (12, "uint32", None),
        "links": (13, "msg", "Link"),
        "droppedLinksCount": (14, "uint32", None),
        "status": (15, "msg", "Status"),
    },
    "Event": {
        "timeUnixNano": (1, "fixed64", None),
        "name": (2, "str", None),
        "attributes": (3, "msg", "KeyValue"),
        "droppedAttributesCount": (4, "uint32", None),
    },
    "Link": {
        "traceId": (1, "hexbytes", None),
        "spanId": (2, "hexbytes", None),
        "traceState": (3, "str", None),
        "attributes": (4, "msg", "KeyValue"),
        "droppedAttributesCount": (5, "uint32", None),
        "flags": (6, "fixed32", None),
    },
    "Status": {"message": (2, "str", None), "code": (3, "enum", None)},
    # metrics
    "ResourceMetrics": {
        "resource": (1, "msg", "Resource"),
        "scopeMetrics": (2, "msg", "ScopeMetrics"),
        "schemaUrl": (3, "str", None),
    },
    "ScopeMetrics": {
        "scope": (1, "msg", "InstrumentationScope"),
        "metrics": (2, "msg", "Metric"),
        "schemaUrl": (3, "str", None),
    },
    "Metric": {
        "name": (1, "str", None),
        "description": (2, "str", None),
        "unit": (3, "str", None),
        "gauge": (5, "msg", "Gauge"),
        "sum": (7, "msg", "Sum"),
        "histogram": (9, "msg", "Histogram"),
        "exponentialHistogram": (10, "msg", "ExponentialHistogram"),
        "summary": (11, "msg", "Summary"),
        "metadata": (12, "msg", "KeyValue"),
    },
    "Gauge": {"dataPoints": (1, "msg", "NumberDataPoint")},
    "Sum": {
        "dataPoints": (1, "msg", "NumberDataPoint"),
        "aggregationTemporality": (2, "enum", None),
        "isMonotonic": (3, "bool", None),
    },
    "Histogram": {
        "dataPoints": (1, "msg", "HistogramDataPoint"),
        "aggregationTemporality": (2, "enum", None),
    },
    "ExponentialHistogram": {
        "dataPoints": (1, "msg", "ExponentialHistogramDataPoint"),
        "aggregationTemporality": (2, "enum", None),
    },
    "Summary": {"dataPoints": (1, "msg", "SummaryDataPoint")},
    "NumberDataPoint": {
        "attributes": (7, "msg", "KeyValue"),
        "startTimeUnixNano": (2, "fixed64", None),
        "timeUnixNano": (3, "fixed64", None),
        "asDouble": (4, "double", None),
        "asInt": (6, "sfixed64", None),
        "exemplars": (5, "msg", "Exemplar"),
        "flags": (8, "uint32", None),
    },
    "HistogramDataPoint": {
        "attributes": (9, "msg", "KeyValue"),
        "startTimeUnixNano": (2, "fixed64", None),
        "timeUnixNano": (3, "fixed64", None),
        "count": (4, "fixed64", None),
        "sum": (5, "double", None),
        "bucketCounts": (6, "fixed64", None),
        "explicitBounds": (7, "double", None),
        "exemplars": (8, "msg", "Exemplar"),
        "flags": (10, "uint32", None),
        "min": (11, "double", None),
        "max": (12, "double", None),
    },
    "ExponentialHistogramDataPoint": {
        "attributes": (1, "msg", "KeyValue"),
        "startTimeUnixNano": (2, "fixed64", None),
        "timeUnixNano": (3, "fixed64", None),
        "count": (4, "fixed64", None),
        "sum": (5, "double", None),
        "scale": (6, "sint32", None),
        "zeroCount": (7, "fixed64", None),
        "positive": (8, "msg", "Buckets"),
        "negative": (9, "msg", "Buckets"),
        "flags": (10, "uint32", None),
        "exemplars": (11, "msg", "Exemplar"),
        "min": (12, "double", None),
        "max": (13, "double", None),
        "zeroThreshold": (14, "double", None),
    },
    "Buckets": {"offset": (1, "sint32", None), "bucketCounts": (2, "uint64", None)},
    "SummaryDataPoint": {
        "attributes": (7, "msg", "KeyValue"),
        "startTimeUnixNano": (2, "fixed64", None),
        "timeUnixNano": (3, "fixed64", None),
        "count": (4, "fixed64", None),
        "sum": (5, "double", None),
        "quantileValues": (6, "msg", "ValueAtQuantile"),
        "flags": (8, "uint32", None),
    },
    "ValueAtQuantile": {"quantile": (1, "double", None), "value": (2, "double", None)},
    "Exemplar": {
        "filteredAttributes": (7, "msg", "KeyValue"),
        "timeUnixNano": (2, "fixed64", None),
        "asDouble": (3, "double", None),
        "asInt": (6, "sfixed64", None),
        "spanId": (4, "hexbytes", None),
        "traceId": (5, "hexbytes", None),
    },
    # logs
    "ResourceLogs": {
        "resource": (1, "msg", "Resource"),
        "scopeLogs": (2, "msg", "ScopeLogs"),
        "schemaUrl": (3, "str", None),
    },
    "ScopeLogs": {
        "scope": (1, "msg", "InstrumentationScope"),
        "logRecords": (2, "msg", "LogRecord"),
        "schemaUrl": (3, "str", None),
    },
    "LogRecord": {
        "timeUnixNano": (1, "fixed64", None),
        "observedTimeUnixNano": (11, "fixed64", None),
        "severityNumber": (2, "enum", None),
        "severityText": (3, "str", None),
        "body": (5, "msg", "AnyValue"),
        "attributes": (6, "msg", "KeyValue"),
        "droppedAttributesCount": (7, "uint32", None),
        "flags": (8, "fixed32", None),
        "traceId": (9, "hexbytes", None),
        "spanId": (10, "hexbytes", None),
        "eventName": (12, "str", None),
    },
}

VARINT, I64, LEN, I32 = 0, 1, 2, 5


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(tag, wire):
    return varint(tag << 3 | wire)


def scalar(kind, v):
    """(wire type, payload) of one scalar value."""
    if kind in ("fixed64", "sfixed64"):
        return I64, struct.pack("<Q", int(v) & ((1 << 64) - 1))
    if kind == "double":
        return I64, struct.pack("<d", float(v))
    if kind == "fixed32":
        return I32, struct.pack("<I", int(v))
    if kind in ("uint32", "uint64", "int64", "int32", "enum"):
        return VARINT, varint(int(v))
    if kind == "sint32":
        v = int(v)
        return VARINT, varint((v << 1) ^ (v >> 31))
    if kind == "bool":
        return VARINT, varint(1 if v else 0)
    if kind == "str":
        b = v.encode()
        return LEN, varint(len(b)) + b
    if kind == "hexbytes":
        b = bytes.fromhex(v)
        return LEN, varint(len(b)) + b
    if kind == "b64bytes":
        b = base64.b64decode(v)
        return LEN, varint(len(b)) + b
    raise ValueError(kind)


def encode(msg, obj):
    fields = S[msg]
    out = bytearray()
    for name, value in obj.items():
        tag, kind, sub = fields[name]
        if kind == "msg":
            for item in value if isinstance(value, list) else [value]:
                body = encode(sub, item)
                out += key(tag, LEN) + varint(len(body)) + body
        elif isinstance(value, list):  # packed repeated scalars
            packed = b"".join(scalar(kind, v)[1] for v in value)
            out += key(tag, LEN) + varint(len(packed)) + packed
        else:
            wire, payload = scalar(kind, value)
            out += key(tag, wire) + payload
    return bytes(out)


# ---------------------------------------------------------------------------
# Realistic requests (OTLP/JSON form)
# ---------------------------------------------------------------------------

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


def ns(offset_ns):
    return str(T0 + offset_ns)


def kv(k, v):
    if isinstance(v, bool):
        val = {"boolValue": v}
    elif isinstance(v, int):
        val = {"intValue": str(v)}
    elif isinstance(v, float):
        val = {"doubleValue": v}
    elif isinstance(v, dict):
        val = v
    else:
        val = {"stringValue": v}
    return {"key": k, "value": val}


def resource(service, version="1.4.2"):
    return {
        "attributes": [
            kv("service.name", service),
            kv("service.version", version),
            kv("service.namespace", "shop"),
            kv("deployment.environment.name", "production"),
            kv("host.name", "ip-10-0-3-17"),
            kv("k8s.pod.name", f"{service}-7c9f8d6b5-x2k4q"),
            kv("telemetry.sdk.name", "opentelemetry"),
            kv("telemetry.sdk.language", "rust"),
            kv("telemetry.sdk.version", "0.33.1"),
        ]
    }


TRACE = "5b8efff798038103d269b633813fc60c"
ROOT, DB, HTTP, CACHE = "eee19b7ec3c1b174", "eee19b7ec3c1b175", "eee19b7ec3c1b176", "eee19b7ec3c1b177"


def traces_request():
    http_attrs = [
        kv("http.request.method", "GET"),
        kv("url.path", "/api/orders/8812"),
        kv("url.scheme", "https"),
        kv("http.route", "/api/orders/{id}"),
        kv("http.response.status_code", 200),
        kv("server.address", "orders.shop.internal"),
        kv("server.port", 443),
        kv("client.address", "10.0.7.21"),
        kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
        kv("network.protocol.version", "1.1"),
    ]
    spans = [
        {
            "traceId": TRACE,
            "spanId": ROOT,
            "parentSpanId": "",
            "name": "GET /api/orders/{id}",
            "kind": 2,
            "startTimeUnixNano": ns(0),
            "endTimeUnixNano": ns(48_000_000),
            "attributes": http_attrs,
            "status": {"code": 1},
            "flags": 257,
        },
        {
            "traceId": TRACE,
            "spanId": DB,
            "parentSpanId": ROOT,
            "name": "SELECT orders",
            "kind": 3,
            "startTimeUnixNano": ns(2_000_000),
            "endTimeUnixNano": ns(17_500_000),
            "attributes": [
                kv("db.system.name", "postgresql"),
                kv("db.namespace", "orders"),
                kv("db.operation.name", "SELECT"),
                kv("db.query.text", "SELECT * FROM orders WHERE id = $1"),
                kv("server.address", "pg-primary.shop.internal"),
                kv("server.port", 5432),
                kv("db.response.returned_rows", 1),
            ],
            "events": [
                {
                    "timeUnixNano": ns(3_000_000),
                    "name": "connection acquired",
                    "attributes": [kv("pool.wait_ms", 0.42)],
                }
            ],
        },
        {
            "traceId": TRACE,
            "spanId": HTTP,
            "parentSpanId": ROOT,
            "traceState": "vendor=abc",
            "name": "POST",
            "kind": 3,
            "startTimeUnixNano": ns(18_000_000),
            "endTimeUnixNano": ns(46_000_000),
            "attributes": [
                kv("http.request.method", "POST"),
                kv("url.full", "https://inventory.shop.internal/api/reserve"),
                kv("http.response.status_code", 503),
                kv("error.type", "503"),
                kv("http.request.resend_count", 1),
            ],
            "events": [
                {
                    "timeUnixNano": ns(45_000_000),
                    "name": "exception",
                    "attributes": [
                        kv("exception.type", "UpstreamUnavailable"),
                        kv("exception.message", "inventory returned 503"),
                        kv("exception.stacktrace", "at reserve (client.rs:88)\nat handler (orders.rs:41)"),
                    ],
                }
            ],
            "links": [
                {
                    "traceId": "0af7651916cd43dd8448eb211c80319c",
                    "spanId": "b7ad6b7169203331",
                    "attributes": [kv("link.kind", "retry-of")],
                    "flags": 1,
                }
            ],
            "status": {"code": 2, "message": "upstream unavailable"},
        },
        {
            "traceId": TRACE,
            "spanId": CACHE,
            "parentSpanId": DB,
            "name": "redis GET",
            "kind": 3,
            "startTimeUnixNano": ns(2_100_000),
            "endTimeUnixNano": ns(2_400_000),
            "attributes": [
                kv("db.system.name", "redis"),
                kv("db.operation.name", "GET"),
                kv("cache.hit", False),
                kv("tags", {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}]}}),
            ],
            "droppedAttributesCount": 2,
        },
    ]
    return {
        "resourceSpans": [
            {
                "resource": resource("orders"),
                "scopeSpans": [
                    {
                        "scope": {"name": "opentelemetry-http", "version": "0.33.0"},
                        "spans": spans,
                        "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
                    }
                ],
                "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
            }
        ]
    }


def traces_rejections_request():
    """Spans the rules reject (short / zero ids, bad parent, end before start)."""
    good = {"traceId": TRACE, "spanId": ROOT, "name": "ok", "kind": 1,
            "startTimeUnixNano": ns(0), "endTimeUnixNano": ns(1000)}
    bad = [
        dict(good, traceId="00000000000000000000000000000000", name="zero trace id"),
        dict(good, spanId="0000000000000000", name="zero span id"),
        dict(good, parentSpanId="0000000000000000", name="zero parent"),
        dict(good, startTimeUnixNano=ns(2000), endTimeUnixNano=ns(1000), name="end before start"),
    ]
    return {"resourceSpans": [{"resource": resource("checkout"),
                               "scopeSpans": [{"scope": {"name": "manual"}, "spans": [good] + bad}]}]}


def traces_bad_id_lengths_request():
    """Ids of the wrong length: per-span rejections in protobuf; the JSON
    decoder refuses the whole body (ids must be 32 / 16 hex characters)."""
    good = {"traceId": TRACE, "spanId": ROOT, "name": "ok", "kind": 1,
            "startTimeUnixNano": ns(0), "endTimeUnixNano": ns(1000)}
    bad = [
        dict(good, traceId="5b8efff798038103", name="short trace id"),
        dict(good, spanId="eee19b7ec3c1b174eee19b7ec3c1b174", name="long span id"),
        dict(good, parentSpanId="eee19b", name="short parent"),
    ]
    return {"resourceSpans": [{"resource": resource("checkout"),
                               "scopeSpans": [{"scope": {"name": "manual"}, "spans": [good] + bad}]}]}


def metrics_request():
    def point_attrs(route, code):
        return [kv("http.request.method", "GET"), kv("http.route", route),
                kv("http.response.status_code", code), kv("url.scheme", "https")]

    routes = [("/api/orders/{id}", 200), ("/api/orders", 201), ("/api/cart", 500)]
    start = ns(-3_600_000_000_000)
    metrics = [
        {
            "name": "process.memory.usage",
            "unit": "By",
            "description": "resident memory",
            "gauge": {"dataPoints": [
                {"timeUnixNano": ns(i * 10_000_000_000), "asInt": str(180_000_000 + i * 4096),
                 "attributes": [kv("process.pid", 4242)]} for i in range(3)
            ]},
        },
        {
            "name": "system.cpu.utilization",
            "unit": "1",
            "gauge": {"dataPoints": [
                {"timeUnixNano": ns(0), "asDouble": 0.37, "attributes": [kv("cpu.mode", "user")]},
                {"timeUnixNano": ns(0), "asDouble": 0.08, "attributes": [kv("cpu.mode", "system")]},
            ]},
        },
        {
            "name": "http.server.request.count",
            "unit": "{request}",
            "sum": {
                "aggregationTemporality": 2,
                "isMonotonic": True,
                "dataPoints": [
                    {"startTimeUnixNano": start, "timeUnixNano": ns(t * 10_000_000_000),
                     "asInt": str(1000 * (j + 1) + 37 * t), "attributes": point_attrs(r, c)}
                    for t in range(2) for j, (r, c) in enumerate(routes)
                ],
            },
        },
        {
            "name": "db.client.connection.count",
            "unit": "{connection}",
            "sum": {
                "aggregationTemporality": 2,
                "isMonotonic": False,
                "dataPoints": [{"startTimeUnixNano": start, "timeUnixNano": ns(0), "asInt": "12",
                                "attributes": [kv("db.client.connection.state", "used")]}],
            },
        },
        {
            "name": "http.server.request.duration",
            "unit": "s",
            "histogram": {
                "aggregationTemporality": 2,
                "dataPoints": [
                    {
                        "startTimeUnixNano": start,
                        "timeUnixNano": ns(0),
                        "count": "42",
                        "sum": 3.71,
                        "min": 0.004,
                        "max": 0.93,
                        "bucketCounts": ["3", "11", "17", "8", "2", "1"],
                        "explicitBounds": [0.005, 0.025, 0.1, 0.25, 0.5],
                        "attributes": point_attrs(r, c),
                        "exemplars": [{"timeUnixNano": ns(-1_000_000), "asDouble": 0.048,
                                       "traceId": TRACE, "spanId": ROOT,
                                       "filteredAttributes": [kv("user.id", "u-77")]}],
                    }
                    for r, c in routes
                ],
            },
        },
        {
            "name": "rpc.client.duration",
            "unit": "ms",
            "exponentialHistogram": {
                "aggregationTemporality": 1,
                "dataPoints": [{
                    "startTimeUnixNano": ns(-10_000_000_000), "timeUnixNano": ns(0),
                    "count": "9", "sum": 81.5, "scale": 3, "zeroCount": "1", "zeroThreshold": 0.0,
                    "positive": {"offset": 20, "bucketCounts": ["1", "0", "3", "4"]},
                    "negative": {"offset": -2, "bucketCounts": []},
                    "min": 0.0, "max": 22.4,
                    "attributes": [kv("rpc.service", "inventory.Reserve")],
                }],
            },
        },
        {
            "name": "gc.pause",
            "unit": "ms",
            "summary": {"dataPoints": [{
                "startTimeUnixNano": start, "timeUnixNano": ns(0), "count": "120", "sum": 340.5,
                "quantileValues": [{"quantile": 0.5, "value": 2.1}, {"quantile": 0.99, "value": 11.8},
                                   {"quantile": 1.0, "value": 17.0}],
            }]},
            "metadata": [kv("source", "runtime")],
        },
    ]
    return {"resourceMetrics": [{
        "resource": resource("orders"),
        "scopeMetrics": [{"scope": {"name": "opentelemetry-metrics", "version": "0.33.0",
                                    "attributes": [kv("otel.scope.kind", "sdk")]},
                          "metrics": metrics}],
    }]}


def metrics_rejections_request():
    """Invalid name, negative / NaN / decreasing counters, a reset (accepted)."""
    start = ns(0)
    attrs = [kv("queue", "orders")]
    return {"resourceMetrics": [{
        "resource": resource("worker"),
        "scopeMetrics": [{"scope": {"name": "manual"}, "metrics": [
            {"name": "9bad metric name!", "gauge": {"dataPoints": [{"timeUnixNano": ns(0), "asDouble": 1.0}]}},
            {"name": "jobs.processed", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
                {"startTimeUnixNano": start, "timeUnixNano": ns(1000), "asInt": "10", "attributes": attrs},
                {"startTimeUnixNano": start, "timeUnixNano": ns(2000), "asInt": "7", "attributes": attrs},
                {"startTimeUnixNano": start, "timeUnixNano": ns(3000), "asInt": "-1", "attributes": [kv("queue", "x")]},
                {"startTimeUnixNano": start, "timeUnixNano": ns(3000), "asDouble": "NaN", "attributes": [kv("queue", "y")]},
                {"startTimeUnixNano": ns(5000), "timeUnixNano": ns(6000), "asInt": "1", "attributes": attrs},
            ]}},
            {"name": "jobs.delta", "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [
                {"startTimeUnixNano": ns(0), "timeUnixNano": ns(1000), "asInt": "3"}]}},
            {"name": "empty.gauge", "gauge": {"dataPoints": []}},
        ]}],
    }]}


TEMPLATES = [
    (9, "INFO", "order {id} created for customer {cust}"),
    (9, "INFO", "GET /api/orders/{id} 200 in {ms}ms"),
    (13, "WARN", "retrying reservation for order {id} (attempt {n})"),
    (17, "ERROR", "inventory returned 503 for order {id}"),
    (5, "DEBUG", "cache miss key=order:{id}"),
]


def logs_request():
    records = []
    for i in range(8):
        sev, text, tpl = TEMPLATES[i % len(TEMPLATES)]
        rec = {
            "timeUnixNano": ns(i * 1_000_000),
            "observedTimeUnixNano": ns(i * 1_000_000 + 50_000),
            "severityNumber": sev,
            "severityText": text,
            "body": {"stringValue": tpl.format(id=8800 + i, cust=f"c-{i % 3}", ms=12 + i, n=i % 3 + 1)},
            "attributes": [
                kv("code.function.name", "orders::handler"),
                kv("code.file.path", "src/orders.rs"),
                kv("code.line.number", 40 + i),
                kv("thread.name", f"tokio-runtime-worker-{i % 2}"),
                kv("order.id", 8800 + i),
            ],
        }
        if i % 2 == 0:
            rec["traceId"] = TRACE
            rec["spanId"] = ROOT
            rec["flags"] = 1
        records.append(rec)
    records.append({
        "observedTimeUnixNano": ns(9_000_000),  # no event time: filed under observed time
        "severityNumber": 10,
        "severityText": "INFO2",
        "eventName": "order.placed",
        "body": {"kvlistValue": {"values": [
            kv("order.id", 8812), kv("amount", 99.5), kv("items", {"arrayValue": {"values": [
                {"stringValue": "sku-1"}, {"stringValue": "sku-2"}]}}),
            kv("raw", {"bytesValue": base64.b64encode(b"\x00\x01\xfe\xff").decode()}),
        ]}},
    })
    return {"resourceLogs": [{
        "resource": resource("orders"),
        "scopeLogs": [{"scope": {"name": "tracing-opentelemetry", "version": "0.33.0"},
                       "logRecords": records}],
    }]}


def logs_rejections_request():
    ok = {"timeUnixNano": ns(0), "severityNumber": 9, "body": {"stringValue": "ok"}}
    return {"resourceLogs": [{
        "resource": resource("worker"),
        "scopeLogs": [{"scope": {"name": "manual"}, "logRecords": [
            ok,
            dict(ok, severityNumber=25, body={"stringValue": "severity out of range"}),
            dict(ok, severityNumber=-1, body={"stringValue": "negative severity"}),
            dict(ok, traceId=TRACE, spanId="0000000000000000", body={"stringValue": "zero span id"}),
            dict(ok, traceId="00000000000000000000000000000000", body={"stringValue": "zero trace id"}),
            {"body": {"stringValue": "no timestamps at all"}},
        ]}],
    }]}


# Hand-written JSON bodies: proto3-JSON leniencies the decoder must accept.
LENIENT_JSON = {
    "traces_snake_case": """{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"legacy"}}]},
 "scope_spans":[{"scope":{"name":"x"},"spans":[{"trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"EEE19B7EC3C1B174",
 "parent_span_id":"","name":"op","kind":"SPAN_KIND_SERVER","start_time_unix_nano":1767225600000000000,
 "end_time_unix_nano":"1767225600000001000","status":{"code":"STATUS_CODE_ERROR","message":null},"flags":null,
 "attributes":[{"key":"n","value":{"int_value":7}},{"key":"d","value":{"double_value":"Infinity"}},
 {"key":"b","value":{"bytes_value":"AAH-_w"}},{"key":"empty","value":{}}],"unknownField":{"ignored":true}}]}]}]}""",
    "metrics_strings": """{"resourceMetrics":[{"resource":{},"scopeMetrics":[{"metrics":[
 {"name":"g","gauge":{"dataPoints":[{"timeUnixNano":"1767225600000000000","asDouble":"NaN"},
 {"timeUnixNano":"1767225600000000000","asDouble":"-Infinity"},{"timeUnixNano":"1767225600000000000","asInt":"-9223372036854775808"}]}},
 {"name":"c","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,
 "dataPoints":[{"startTimeUnixNano":"1","timeUnixNano":"2","asDouble":1e308},{"startTimeUnixNano":"1","timeUnixNano":"3","asDouble":"Infinity"}]}},
 {"name":"h","histogram":{"aggregationTemporality":2,"dataPoints":[{"timeUnixNano":"18446744073709551615","count":"18446744073709551615",
 "bucketCounts":[],"explicitBounds":[1,2,3]}]}}]}]}]}""",
    "logs_numbers": """{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"18446744073709551615","severityNumber":"SEVERITY_NUMBER_FATAL4",
 "body":{"arrayValue":{"values":[{"kvlistValue":{"values":[{"key":"k","value":{"arrayValue":{"values":[]}}}]}},{"boolValue":true},{"doubleValue":-0.0}]}},
 "traceId":"","spanId":"","flags":4294967295,"droppedAttributesCount":"3"}]}]}]}""",
    "empty_object": "{}",
    "empty_lists": """{"resourceSpans":[],"resourceMetrics":[{}],"resourceLogs":[{"scopeLogs":[{}]}]}""",
}


def main():
    requests = {
        "traces": ("ExportTraceServiceRequest", traces_request()),
        "traces_rejections": ("ExportTraceServiceRequest", traces_rejections_request()),
        "traces_bad_id_lengths": ("ExportTraceServiceRequest", traces_bad_id_lengths_request()),
        "metrics": ("ExportMetricsServiceRequest", metrics_request()),
        "metrics_rejections": ("ExportMetricsServiceRequest", metrics_rejections_request()),
        "logs": ("ExportLogsServiceRequest", logs_request()),
        "logs_rejections": ("ExportLogsServiceRequest", logs_rejections_request()),
    }
    json_dir = os.path.join(HERE, "seeds", "otlp_json")
    proto_dir = os.path.join(HERE, "seeds", "otlp_proto")
    os.makedirs(json_dir, exist_ok=True)
    os.makedirs(proto_dir, exist_ok=True)
    for name, (msg, req) in requests.items():
        with open(os.path.join(json_dir, name + ".json"), "w") as f:
            json.dump(req, f, separators=(",", ":"))
        # "NaN" is the JSON spelling of a double; give the encoder the float.
        proto_req = json.loads(json.dumps(req).replace('"NaN"', "NaN"))
        with open(os.path.join(proto_dir, name + ".pb"), "wb") as f:
            f.write(encode(msg, proto_req))
    for name, body in LENIENT_JSON.items():
        json.loads(body)  # must be valid JSON
        with open(os.path.join(json_dir, name + ".json"), "w") as f:
            f.write(body.replace("\n", ""))
    print(f"wrote {len(requests) + len(LENIENT_JSON)} JSON and {len(requests)} protobuf seeds")


if __name__ == "__main__":
    main()
