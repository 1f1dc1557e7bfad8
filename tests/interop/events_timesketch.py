"""Checks `trailproof events --format timesketch` output line by line with the rules of
Timesketch's JSONL importer (timesketch/lib/utils.py, read_and_validate_jsonl): each line is
a JSON object with the mandatory fields message, datetime and timestamp_desc; datetime is
parsed with dateutil, as Timesketch does when it derives `timestamp` (microseconds) from it.
Beyond the importer: `timestamp`, which Timesketch takes as given when present, must be that
same instant; the line must be flat (no nested objects, which would fight over the search
index's mapping); and it must carry the record it stands for.

    python3 events_timesketch.py EVENTS.timesketch.jsonl EVENTS.jsonl

Prints one JSON object (lines read, first problem or null); exits 0 when every line passes
and stands for the JSONL line at the same position.
"""
import json
import sys

from dateutil import parser

MANDATORY = ["message", "datetime", "timestamp_desc"]

ts_path, jsonl_path = sys.argv[1], sys.argv[2]
jsonl = [json.loads(line) for line in open(jsonl_path, encoding="utf-8")]
problem = None
count = 0
with open(ts_path, "rb") as fh:
    for lineno, line in enumerate(fh, start=1):
        count += 1
        try:
            linedict = json.loads(line)
        except ValueError as e:
            problem = "line %d: not JSON: %s" % (lineno, e)
            break
        missing = [f for f in MANDATORY if f not in linedict]
        if missing:
            problem = "line %d: missing %s" % (lineno, ",".join(missing))
            break
        derived = int(parser.parse(linedict["datetime"]).timestamp() * 1000000)
        if linedict.get("timestamp") != derived:
            problem = "line %d: timestamp %r is not datetime %r" % (
                lineno, linedict.get("timestamp"), linedict["datetime"])
            break
        if not isinstance(linedict["message"], str) or not linedict["message"]:
            problem = "line %d: empty message" % lineno
            break
        nested = [k for k, v in linedict.items()
                  if isinstance(v, dict) or (isinstance(v, list) and any(not isinstance(x, str) for x in v))]
        if nested:
            problem = "line %d: nested fields %s" % (lineno, nested)
            break
        if lineno > len(jsonl):
            problem = "line %d: more lines than the JSONL" % lineno
            break
        want = jsonl[lineno - 1]
        provenance = want.pop("trailproof")
        if json.loads(linedict["cloudtrail_record"]) != want:
            problem = "line %d: not the record of the JSONL line" % lineno
            break
        if (linedict["trailproof_log"], linedict["trailproof_verdict"]) != (
                provenance["log"], provenance["verdict"]):
            problem = "line %d: provenance differs" % lineno
            break
        if isinstance(want.get("eventTime"), str) and linedict["timestamp_desc"] == "Event Time":
            if parser.parse(want["eventTime"]) != parser.parse(linedict["datetime"]):
                problem = "line %d: datetime is not eventTime" % lineno
                break
if problem is None and count != len(jsonl):
    problem = "%d lines, the JSONL has %d" % (count, len(jsonl))
print(json.dumps({"lines": count, "problem": problem}))
sys.exit(0 if problem is None else 1)
