#!/usr/bin/env python3
"""Independent verifier for trailproof's signed reports, using only Python's `cryptography`.

    verify_dsse.py ENVELOPE (--key PUB.pem | --ca CA.pem)

Follows the DSSE v1 protocol (signature over "DSSEv1 <len> <type> <len> <payload>") and the
in-toto Statement v1 layout; shares no code with trailproof. Exit 0 and "INTACT ..." when the
envelope verifies, 1 and "NOT INTACT: reason" when it does not.
"""
import argparse
import base64
import binascii
import datetime
import hashlib
import json
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://trailproof.dev/verification-report/v1"
MANIFEST_SUBJECT = "trailproof-manifest.json"


class NotIntact(Exception):
    pass


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def spki_sha256(key) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def verify_signature(key, sig: bytes, message: bytes) -> None:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name != "secp256r1":
                raise NotIntact("unsupported curve " + key.curve.name)
            key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 2048:
                raise NotIntact("RSA key smaller than 2048 bits")
            key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise NotIntact("unsupported key type")
    except InvalidSignature:
        raise NotIntact("signature does not verify")


def b64(text, field) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise NotIntact(field + " is not base64")


def check(envelope_bytes: bytes, key_pem, ca_pem) -> str:
    try:
        env = json.loads(envelope_bytes)
    except (ValueError, UnicodeDecodeError) as e:
        raise NotIntact("not JSON: %s" % e)
    if not isinstance(env, dict) or env.get("payloadType") != PAYLOAD_TYPE:
        raise NotIntact("payloadType is not " + PAYLOAD_TYPE)
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise NotIntact("expected exactly one signature")
    s = sigs[0]
    payload = b64(env.get("payload"), "payload")
    sig = b64(s.get("sig"), "sig")
    cert = None
    cert_pem = None
    if "certificate" in s:
        cert_pem = b64(s["certificate"], "certificate")
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as e:
            raise NotIntact("bad certificate: %s" % e)

    if key_pem is not None:
        key = serialization.load_pem_public_key(key_pem)
        if cert is not None and spki_sha256(cert.public_key()) != spki_sha256(key):
            raise NotIntact("the embedded certificate is for another key")
    else:
        if cert is None:
            raise NotIntact("no certificate to check against the CA")
        ca = x509.load_pem_x509_certificate(ca_pem)
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature) as e:
            raise NotIntact("certificate not issued by the CA: %s" % (e or "bad signature"))
        now = datetime.datetime.now(datetime.timezone.utc)
        for c in (cert, ca):
            if not (c.not_valid_before_utc <= now <= c.not_valid_after_utc):
                raise NotIntact("certificate not valid now: " + c.subject.rfc4514_string())
        key = cert.public_key()

    keyid = spki_sha256(key)
    if s.get("keyid") != keyid:
        raise NotIntact("keyid does not name the verifying key")
    verify_signature(key, sig, pae(PAYLOAD_TYPE, payload))

    # The signature holds: now the statement must be a trailproof report that agrees with itself.
    try:
        st = json.loads(payload)
        pred = st["predicate"]
        if st["_type"] != STATEMENT_TYPE or st["predicateType"] != PREDICATE_TYPE:
            raise NotIntact("not a trailproof report statement")
        manifest = pred["manifest"]
        objects = [
            {"name": e["uri"], "digest": {"sha256": e["sha256"]}}
            for e in manifest
            if e["sha256"] is not None
        ]
        compact = json.dumps(manifest, separators=(",", ":"), ensure_ascii=False).encode()
        by_manifest = [{"name": MANIFEST_SUBJECT, "digest": {"sha256": hashlib.sha256(compact).hexdigest()}}]
        if st["subject"] not in (objects, by_manifest):
            raise NotIntact("subjects do not match the manifest")
        signer = pred["signer"]
        if signer["keyid"] != keyid:
            raise NotIntact("signed signer block names another key")
        want_cert = hashlib.sha256(cert_pem).hexdigest() if cert_pem is not None else None
        if signer["certificate_sha256"] != want_cert:
            raise NotIntact("signed signer block names another certificate")
        exit_code = pred["exit_code"]
        totals = pred["totals"]
    except (KeyError, TypeError, ValueError) as e:
        raise NotIntact("payload schema: %r" % (e,))
    return "INTACT subjects=%d manifest=%d digests_valid=%d logs_valid=%d exit_code=%d" % (
        len(st["subject"]),
        len(manifest),
        totals["digests"]["valid"],
        totals["logs"]["valid"],
        exit_code,
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("envelope")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--key")
    g.add_argument("--ca")
    a = ap.parse_args()
    with open(a.envelope, "rb") as f:
        data = f.read()
    key_pem = open(a.key, "rb").read() if a.key else None
    ca_pem = open(a.ca, "rb").read() if a.ca else None
    try:
        print(check(data, key_pem, ca_pem))
        return 0
    except NotIntact as e:
        print("NOT INTACT: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
