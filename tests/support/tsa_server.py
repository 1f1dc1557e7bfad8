"""A test timestamp authority on loopback: `openssl ts -reply` behind HTTP (TEST ONLY).

Usage: tsa_server.py PORT TESTDATA_TSA_DIR

POST an RFC 3161 TimeStampReq (application/timestamp-query) to /NAME:

  /p256 /p384 /rsa2048   openssl ts -reply, signed by testdata/tsa/tsa-NAME (P-384 with SHA-384)
  /ess-v1                the P-256 TSA naming its certificate by ESS signingCertificate (SHA-1)
  /resigned              a token whose TSTInfo openssl made for this request, re-signed here by
                         the P-256 TSA: the control that shows the re-signed tokens below fail
                         only for what they lack
  /resigned-key-id       the same, naming the signer by subject key identifier (CMS version 3)
  /expired               openssl ts -reply, signed with a TSA certificate that expired in 2001
  /other-request         openssl's reply to another request: same imprint, another nonce
  /notsa                 a token whose TSTInfo openssl made for this request, re-signed (with
                         every signed attribute RFC 3161 asks for) by notsa.cert.pem, a
                         certificate without the timeStamping extended key usage
  /no-ess                the same, re-signed by the real P-256 TSA, but without the ESS
                         signingCertificate attribute

Tokens are made by openssl; the re-signed ones are built here with `cryptography`, DER by
hand, so that the verifier's checks on the signer can each be tested on their own.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PORT = int(sys.argv[1])
DIR = sys.argv[2]
WORK = tempfile.mkdtemp(prefix="trailproof-tsa-")
SERIAL = os.path.join(WORK, "serial")
with open(SERIAL, "w") as f:
    f.write("01\n")
LOCK = threading.Lock()  # one openssl at a time: they share the serial file


def path(name):
    return os.path.join(DIR, name)


def run(args, stdin=None):
    env = dict(os.environ, TSA_SERIAL=SERIAL)
    with LOCK:
        done = subprocess.run(args, input=stdin, capture_output=True, env=env, check=True)
    return done.stdout


def openssl_reply(query, cert, key, digest="sha256", section="tsa_config"):
    with tempfile.NamedTemporaryFile(dir=WORK) as q:
        q.write(query)
        q.flush()
        return run(["openssl", "ts", "-reply", "-config", path("tsa.cnf"), "-section", section,
                    "-queryfile", q.name, "-signer", path(cert), "-inkey", path(key),
                    "-" + digest])


# --- DER, just enough to take a reply apart and build a SignedData ---------------------------

def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + content


def read(buf, i=0):
    """(tag, contents, next index) of the element at i."""
    tag, n = buf[i], buf[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(buf[i:i + k], "big")
        i += k
    return tag, buf[i:i + n], i + n


def children(buf):
    out, i = [], 0
    while i < len(buf):
        tag, content, j = read(buf, i)
        out.append((tag, content, buf[i:j]))
        i = j
    return out


def oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        enc = [p & 0x7F]
        p >>= 7
        while p:
            enc.insert(0, 0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(enc)
    return tlv(0x06, body)


def integer(n):
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=False))


def tst_info(reply):
    """The TSTInfo DER inside an openssl reply."""
    _, resp, _ = read(reply)
    token = children(resp)[1][1]  # ContentInfo
    signed = read(children(token)[1][1])[1]  # [0] -> SignedData
    encap = children(signed)[2][1]
    e_content = children(encap)[1][1]  # [0]
    return read(e_content)[1]  # OCTET STRING


def resign(tst, cert_file, key_file, with_ess=True, by_key_id=False):
    """A granted TimeStampResp whose token is `tst` signed by cert/key (ECDSA P-256, SHA-256),
    naming the signer by issuer and serial number, or by subject key identifier."""
    cert = x509.load_pem_x509_certificate(open(path(cert_file), "rb").read())
    key = serialization.load_pem_private_key(open(path(key_file), "rb").read(), None)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    sha256 = oid("2.16.840.1.101.3.4.2.1")
    attrs = [
        tlv(0x30, oid("1.2.840.113549.1.9.3") + tlv(0x31, oid("1.2.840.113549.1.9.16.1.4"))),
        tlv(0x30, oid("1.2.840.113549.1.9.4")
            + tlv(0x31, tlv(0x04, hashlib.sha256(tst).digest()))),
    ]
    if with_ess:
        ess_cert_id_v2 = tlv(0x30, tlv(0x04, hashlib.sha256(cert_der).digest()))
        attrs.append(tlv(0x30, oid("1.2.840.113549.1.9.16.2.47")
                         + tlv(0x31, tlv(0x30, tlv(0x30, ess_cert_id_v2)))))
    signed_attrs = tlv(0x31, b"".join(sorted(attrs)))
    signature = key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
    if by_key_id:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        version, sid = integer(3), tlv(0x80, ski)
    else:
        version = integer(1)
        sid = tlv(0x30, cert.issuer.public_bytes() + integer(cert.serial_number))
    signer_info = tlv(0x30, b"".join([
        version,
        sid,
        tlv(0x30, sha256),
        b"\xa0" + signed_attrs[1:],
        tlv(0x30, oid("1.2.840.10045.4.3.2")),
        tlv(0x04, signature),
    ]))
    signed_data = tlv(0x30, b"".join([
        integer(3),
        tlv(0x31, tlv(0x30, sha256)),
        tlv(0x30, oid("1.2.840.113549.1.9.16.1.4") + tlv(0xA0, tlv(0x04, tst))),
        tlv(0xA0, cert_der),
        tlv(0x31, signer_info),
    ]))
    token = tlv(0x30, oid("1.2.840.113549.1.7.2") + tlv(0xA0, signed_data))
    return tlv(0x30, tlv(0x30, integer(0)) + token)


def imprint_hex(query):
    """The hashed message of a TimeStampReq."""
    _, req, _ = read(query)
    imprint = children(req)[1][1]
    return children(imprint)[1][1].hex()


def answer(name, query):
    if name in ("p256", "rsa2048"):
        return openssl_reply(query, "tsa-%s.cert.pem" % name, "tsa-%s.pem" % name)
    if name == "p384":
        return openssl_reply(query, "tsa-p384.cert.pem", "tsa-p384.pem", "sha384")
    if name == "ess-v1":
        return openssl_reply(query, "tsa-p256.cert.pem", "tsa-p256.pem", section="tsa_ess_v1")
    if name in ("resigned", "resigned-key-id"):
        tst = tst_info(openssl_reply(query, "tsa-p256.cert.pem", "tsa-p256.pem"))
        return resign(tst, "tsa-p256.cert.pem", "tsa-p256.pem", by_key_id=name.endswith("key-id"))
    if name == "expired":
        return openssl_reply(query, "tsa-expired.cert.pem", "tsa-p256.pem")
    if name == "other-request":
        other = run(["openssl", "ts", "-query", "-digest", imprint_hex(query), "-sha256", "-cert"])
        return openssl_reply(other, "tsa-p256.cert.pem", "tsa-p256.pem")
    if name == "notsa":
        tst = tst_info(openssl_reply(query, "tsa-p256.cert.pem", "tsa-p256.pem"))
        return resign(tst, "notsa.cert.pem", "notsa.pem")
    if name == "no-ess":
        tst = tst_info(openssl_reply(query, "tsa-p256.cert.pem", "tsa-p256.pem"))
        return resign(tst, "tsa-p256.cert.pem", "tsa-p256.pem", with_ess=False)
    return None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        query = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Type") != "application/timestamp-query":
            self.send_error(415)
            return
        try:
            body = answer(self.path.strip("/"), query)
        except subprocess.CalledProcessError as e:
            sys.stderr.write(e.stderr.decode(errors="replace"))
            self.send_error(500)
            return
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
