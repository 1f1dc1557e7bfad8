"""Reads a `trailproof events --format parquet` file with DuckDB, an independent Parquet
reader, and compares it with the JSONL export of the same run.

    python3 events_parquet.py EVENTS.parquet EVENTS.jsonl

Prints one JSON object: the row counts, the eventName group-by of each, and the first
difference found (null when none). Exits 0 when the file reads back equal to the JSONL:
same rows in the same order, each column the field of the record it names, eventTime a
TIMESTAMP WITH TIME ZONE equal to the record's eventTime.
"""
import datetime
import json
import sys

import duckdb

parquet_path, jsonl_path = sys.argv[1], sys.argv[2]
lines = [json.loads(line) for line in open(jsonl_path, encoding="utf-8")]

con = duckdb.connect()
types = dict(
    (r[0], r[1])
    for r in con.execute(
        "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(?))",
        [parquet_path],
    ).fetchall()
)
cur = con.execute("SELECT * FROM read_parquet(?)", [parquet_path])
names = [d[0] for d in cur.description]
rows = [dict(zip(names, r)) for r in cur.fetchall()]

def group(sql_rows):
    return sorted([list(r) for r in sql_rows], key=lambda r: (r[0] is None, r[0] or ""))

parquet_groups = group(
    con.execute(
        "SELECT eventName, count(*) FROM read_parquet(?) GROUP BY eventName", [parquet_path]
    ).fetchall()
)
counts = {}
for line in lines:
    name = line.get("eventName")
    name = name if isinstance(name, str) else None
    counts[name] = counts.get(name, 0) + 1
jsonl_groups = group(counts.items())

COLUMNS = {
    "eventID": ["eventID"], "eventName": ["eventName"], "eventSource": ["eventSource"],
    "eventType": ["eventType"], "awsRegion": ["awsRegion"],
    "recipientAccountId": ["recipientAccountId"], "sourceIPAddress": ["sourceIPAddress"],
    "userAgent": ["userAgent"], "errorCode": ["errorCode"], "errorMessage": ["errorMessage"],
    "userIdentityType": ["userIdentity", "type"], "userIdentityArn": ["userIdentity", "arn"],
    "userIdentityAccountId": ["userIdentity", "accountId"],
}

def at(doc, path):
    for k in path:
        if not isinstance(doc, dict) or k not in doc:
            return None
        doc = doc[k]
    return doc

difference = None
if types.get("eventTime") != "TIMESTAMP WITH TIME ZONE":
    difference = "eventTime is %s" % types.get("eventTime")
if len(rows) != len(lines) and difference is None:
    difference = "row counts differ"
for i, (row, line) in enumerate(zip(rows, lines)):
    if difference is not None:
        break
    provenance = line.pop("trailproof")
    record = json.loads(row["record"])
    if record != line:
        difference = "row %d: record differs" % i
    elif json.loads(row["trailproof"]) != provenance:
        difference = "row %d: trailproof differs" % i
    elif (row["trailproof_log"], row["trailproof_log_sha256"], row["trailproof_verdict"],
          row["trailproof_digest"], row["trailproof_version_id"]) != (
          provenance["log"], provenance["log_sha256"], provenance["verdict"],
          provenance.get("digest"), provenance.get("version_id")):
        difference = "row %d: provenance columns differ" % i
    else:
        for column, path in COLUMNS.items():
            want = at(line, path)
            if not isinstance(want, str):
                want = None
            if row[column] != want:
                difference = "row %d: %s is %r, the record has %r" % (i, column, row[column], want)
                break
        want_ro = line.get("readOnly") if isinstance(line.get("readOnly"), bool) else None
        if difference is None and row["readOnly"] != want_ro:
            difference = "row %d: readOnly differs" % i
        t = line.get("eventTime")
        want_t = datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) if isinstance(t, str) else None
        if difference is None and row["eventTime"] != want_t:
            difference = "row %d: eventTime %r, the record has %r" % (i, row["eventTime"], t)

print(json.dumps({
    "parquet_rows": len(rows),
    "jsonl_rows": len(lines),
    "parquet_groups": parquet_groups,
    "jsonl_groups": jsonl_groups,
    "difference": difference,
}))
sys.exit(0 if difference is None and parquet_groups == jsonl_groups else 1)
