"""An HTTP proxy that injects S3 faults in front of a server (moto), for trailproof's tests.

Usage: python3 fault_proxy.py PORT UPSTREAM_PORT RULES.json

RULES.json is read at every request:
  {"transient_rate": 0.2,          # share of requests that fail once in a random way
   "persistent": ["substring"],     # GETs of keys containing this always answer 500
   "stall": ["substring"],          # GETs of these send headers and half the body, then hang
   "truncate": ["substring"],       # GETs of these always end the body early
   "drip": ["substring"],           # GETs of these send their body one byte at a time,
   "drip_interval": 2.0,            #   this many seconds apart
   "list_loop": {"prefix": "substring", "token": "same"},
                                    # ListObjectsV2 of a prefix containing this always answers
                                    # its first page, saying it is truncated, with the same
                                    # token ("same") or a new one each time ("fresh")
   "keys_loop": "same",             # ListPublicKeys answers always carry a NextToken: the
                                    # same one, or a new one each time ("fresh")
   "events_loop": "same",           # FilterLogEvents answers its first page whatever token it
                                    # is asked with, always with a nextToken: the same one, or
                                    # a new one each time ("fresh")
   "swap": {"substring": "KEY"},    # GETs of these answer object KEY instead (body, metadata)
   "denied": ["substring"],         # GETs of these answer 403 AccessDenied
   "versions_denied": true,         # ListObjectVersions answers 403 AccessDenied
   "storm": true,                   # every request answers 503 SlowDown
   "rate_limit": {"per_second": 40, # at most this many requests pass in any second, the rest
                  "delay": 0.2},    #   answer 503 SlowDown at once; each that passes waits
                                    #   `delay` seconds first (a distant server)
   "page_size": 5,                  # ListObjectsV2 answers pages of at most this many keys
   "lists_throttled": 0.5,          # share of ListObjectsV2 requests answered 503 SlowDown
   "count_gets": true,              # count the GETs of each object, in "stats" as "gets"
   "stats": "PATH",                 # with rate_limit, lists_throttled or count_gets, the
                                    #   counts so far are kept in PATH: {"passed": N,
                                    #   "throttled": M, "gets": {"/BUCKET/KEY": N}}
   "count": "FILE"}                 # append "METHOD PATH?QUERY" of every request to FILE
Transient faults: 503 SlowDown, 500 InternalError, a connection reset before any answer, or a
body cut short after its headers promised more.
"""
import http.client
import itertools
import json
import random
import re
import sys
import threading
import collections
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

PORT = int(sys.argv[1])
UPSTREAM = int(sys.argv[2])
RULES = sys.argv[3]
RNG = random.Random(7)
LOCK = threading.Lock()
TOKENS = itertools.count()


PASSED = collections.deque()  # when each request let through by "rate_limit" arrived
COUNTS = {"passed": 0, "throttled": 0, "gets": {}}


def count(rules, throttled=None, get=None):
    """Counts a request as throttled or passed, or a GET of the object at path `get`, in the
    rules' "stats" file if they name one. Called with LOCK held."""
    if throttled is not None:
        COUNTS["throttled" if throttled else "passed"] += 1
    if get is not None:
        COUNTS["gets"][get] = COUNTS["gets"].get(get, 0) + 1
    stats = rules.get("stats")
    if stats:
        with open(stats + ".tmp", "w") as f:
            json.dump(COUNTS, f)
        os.replace(stats + ".tmp", stats)


def over_rate(rules):
    """Whether "rate_limit" turns this request away: as many passed in the last second."""
    now = time.monotonic()
    with LOCK:
        while PASSED and PASSED[0] <= now - 1.0:
            PASSED.popleft()
        throttled = len(PASSED) >= rules["rate_limit"]["per_second"]
        if not throttled:
            PASSED.append(now)
        count(rules, throttled)
    return throttled


def next_token(kind):
    with LOCK:
        return "loop" if kind == "same" else f"loop-{next(TOKENS)}"


def rules():
    with open(RULES) as f:
        return json.load(f)


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self, path=None):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, path or self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp, data

    def send(self, resp, data, cut=None):
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data if cut is None else data[:cut])
        self.wfile.flush()

    def error(self, status, code):
        body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def list_loop(self, rule):
        """The first page of the listing, however it was asked for, said to go on."""
        url = urlsplit(self.path)
        query = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != "continuation-token"]
        resp, data = self.forward(url.path + "?" + urlencode(query))
        text = re.sub(r"<NextContinuationToken>.*?</NextContinuationToken>", "", data.decode())
        text = text.replace("<IsTruncated>false</IsTruncated>", "<IsTruncated>true</IsTruncated>")
        token = f"<NextContinuationToken>{next_token(rule.get('token', 'same'))}</NextContinuationToken>"
        text = text.replace("</IsTruncated>", "</IsTruncated>" + token, 1)
        self.send(resp, text.encode())

    def keys_loop(self, kind):
        resp, data = self.forward()
        answer = json.loads(data)
        answer["NextToken"] = next_token(kind)
        self.send(resp, json.dumps(answer).encode())

    def events_loop(self, kind):
        length = int(self.headers.get("Content-Length") or 0)
        asked = json.loads(self.rfile.read(length) or b"{}")
        asked.pop("nextToken", None)
        body = json.dumps(asked).encode()
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
        headers["Content-Length"] = str(len(body))
        conn.request("POST", self.path, body=body, headers=headers)
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        conn.close()
        answer["nextToken"] = next_token(kind)
        self.send(resp, json.dumps(answer).encode())

    def drip(self, interval):
        resp, data = self.forward()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(interval)

    def handle_one(self):
        r = rules()
        if r.get("count"):
            with LOCK, open(r["count"], "a") as f:
                f.write(f"{self.command} {self.path}\n")
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        loop = r.get("list_loop")
        if loop and query.get("list-type") == "2" and loop["prefix"] in query.get("prefix", ""):
            return self.list_loop(loop)
        target = self.headers.get("X-Amz-Target") or ""
        if r.get("keys_loop") and target.endswith("ListPublicKeys"):
            return self.keys_loop(r["keys_loop"])
        if r.get("events_loop") and target.endswith("FilterLogEvents"):
            return self.events_loop(r["events_loop"])
        if r.get("storm"):
            return self.error(503, "SlowDown")
        if r.get("rate_limit"):
            if over_rate(r):
                return self.error(503, "SlowDown")
            time.sleep(r["rate_limit"].get("delay", 0.0))
        is_listing = self.command == "GET" and query.get("list-type") == "2"
        if is_listing and "lists_throttled" in r:
            with LOCK:
                throttle = RNG.random() < r["lists_throttled"]
                count(r, throttle)
            if throttle:
                return self.error(503, "SlowDown")
        if is_listing and r.get("page_size"):
            asked = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != "max-keys"]
            asked.append(("max-keys", str(r["page_size"])))
            resp, data = self.forward(url.path + "?" + urlencode(asked))
            return self.send(resp, data)
        if r.get("versions_denied") and self.command == "GET" and "versions" in query:
            return self.error(403, "AccessDenied")
        is_object_get = self.command == "GET" and "list-type" not in self.path and self.path.count("/") > 2
        if is_object_get and r.get("count_gets"):
            with LOCK:
                count(r, get=url.path)
        if is_object_get and any(s in self.path for s in r.get("denied", [])):
            return self.error(403, "AccessDenied")
        for part, other in r.get("swap", {}).items():
            if is_object_get and part in self.path:
                bucket = url.path.split("/")[1]
                resp, data = self.forward(f"/{bucket}/{other}")
                return self.send(resp, data)
        if is_object_get and any(s in self.path for s in r.get("drip", [])):
            return self.drip(r.get("drip_interval", 2.0))
        if is_object_get and any(s in self.path for s in r.get("persistent", [])):
            self.forward()
            return self.error(500, "InternalError")
        if is_object_get and any(s in self.path for s in r.get("stall", [])):
            resp, data = self.forward()
            self.send(resp, data, cut=len(data) // 2)
            time.sleep(3600)
            return
        if is_object_get and any(s in self.path for s in r.get("truncate", [])):
            resp, data = self.forward()
            self.send(resp, data, cut=len(data) // 2)
            self.close_connection = True
            return
        with LOCK:
            roll = RNG.random()
            kind = RNG.choice(["slowdown", "internal", "reset", "cut"])
        if roll < r.get("transient_rate", 0.0):
            if kind == "slowdown":
                return self.error(503, "SlowDown")
            if kind == "internal":
                return self.error(500, "InternalError")
            if kind == "reset":
                self.close_connection = True
                return
            if is_object_get:
                resp, data = self.forward()
                self.send(resp, data, cut=len(data) // 2)
                self.close_connection = True
                return
        resp, data = self.forward()
        self.send(resp, data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_one


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    # Up to 256 requests arrive at once (the S3 source's default concurrency): with the
    # default backlog of 5 the kernel drops connections and they time out under load.
    ThreadingHTTPServer.request_queue_size = 1024
    ThreadingHTTPServer(("127.0.0.1", PORT), Proxy).serve_forever()
