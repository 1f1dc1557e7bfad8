"""moto's S3 + CloudTrail + CloudWatch Logs (+ SQS, for `watch`) server, plus the ListPublicKeys call moto lacks.

Usage: python3 moto_server.py PORT KEYS.json

KEYS.json is in the shape `aws cloudtrail list-public-keys` prints (Value = base64 of the DER,
as on the wire); the handler returns the keys whose validity overlaps the requested window. The
file is read at every call, so a test can swap the keys between scenarios.
"""
import json
import sys

from moto.cloudtrail.responses import CloudTrailResponse
from moto.logs.models import LogsBackend
from moto.server import main

PORT = sys.argv[1]
KEYS_FILE = sys.argv[2]


def list_public_keys(self):
    with open(KEYS_FILE) as f:
        keys = json.load(f)["PublicKeyList"]
    params = json.loads(self.body) if self.body else {}
    start = params.get("StartTime")
    end = params.get("EndTime")
    keys = [
        k
        for k in keys
        if (end is None or k["ValidityStartTime"] <= end)
        and (start is None or k["ValidityEndTime"] >= start)
    ]
    return json.dumps({"PublicKeyList": keys})


def put_log_events_of_any_age(self, log_group_name, log_stream_name, log_events):
    """PutLogEvents without the 14-day limit (CloudWatch Logs, and moto, refuse older events):
    the tests put the events of generated corpora, which are dated 2026-01-01."""
    if log_group_name not in self.groups:
        from moto.logs.exceptions import ResourceNotFoundException

        raise ResourceNotFoundException()
    group = self.groups[log_group_name]
    return group.put_log_events(log_stream_name, log_events), {}


CloudTrailResponse.list_public_keys = list_public_keys
LogsBackend.put_log_events = put_log_events_of_any_age

if __name__ == "__main__":
    main(["-H", "127.0.0.1", "-p", PORT])
