"""Uploads a generated bucket copy (OUT/bucket) to an S3 endpoint, with each object's S3
metadata (digest signatures) from its evidence-metadata file. Usage: upload.py DIR BUCKET."""
import concurrent.futures
import json
import os
import sys

import boto3
from botocore.config import Config

root = os.path.join(sys.argv[1], "bucket")
bucket = sys.argv[2]
s3 = boto3.client("s3", config=Config(max_pool_connections=32, s3={"addressing_style": "path"}))
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass  # a second part of the copy (benches/checkpoint.sh)
meta = {}
evidence = os.path.join(root, "trailproof-evidence.json")
if os.path.exists(evidence):
    meta = json.load(open(evidence))["objects"]
keys = []
for d, _, files in os.walk(root):
    for f in files:
        key = os.path.relpath(os.path.join(d, f), root)
        if key != "trailproof-evidence.json":
            keys.append(key)


def put(key):
    with open(os.path.join(root, key), "rb") as f:
        s3.put_object(Bucket=bucket, Key=key, Body=f.read(), Metadata=meta.get(key, {}).get("metadata", {}))


with concurrent.futures.ThreadPoolExecutor(32) as pool:
    list(pool.map(put, keys))
print(f"uploaded {len(keys)} objects to s3://{bucket}")
