#!/usr/bin/env bash
# Rebuilds the timestamp-authority test keys and certificates (TEST ONLY, committed in clear).
# The tests run `openssl ts -reply` with them behind tests/support/tsa_server.py.
# Certificates last 100 years so the committed files keep verifying, except the expired one.
set -euo pipefail
cd "$(dirname "$0")"
# Two CAs: the one that issues the test TSAs, and another one nobody trusts here.
for ca in ca other-ca; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $ca-key.pem
  openssl req -x509 -new -key $ca-key.pem -subj "/CN=trailproof test TSA $ca" -days 36500 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -out $ca.pem
done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out tsa-p256.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out tsa-p384.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out tsa-rsa2048.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out notsa.pem
# RFC 3161 2.3: a TSA's certificate has extendedKeyUsage timeStamping alone, critical.
tsa_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation
extendedKeyUsage=critical,timeStamping
subjectKeyIdentifier=hash'
# The same certificate without the extendedKeyUsage: it may sign, but not timestamps.
plain_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation
subjectKeyIdentifier=hash'
issue() { # key ca extensions out
  openssl req -new -key $1.pem -subj "/CN=test TSA $1/O=trailproof tests" -out tmp.csr
  openssl x509 -req -in tmp.csr -CA $2.pem -CAkey $2-key.pem -days 36500 \
    -set_serial 0x$(openssl rand -hex 8) -extfile <(printf '%s\n' "$3") -out $4
  rm tmp.csr
}
issue tsa-p256 ca "$tsa_ext" tsa-p256.cert.pem
issue tsa-p384 ca "$tsa_ext" tsa-p384.cert.pem
issue tsa-rsa2048 ca "$tsa_ext" tsa-rsa2048.cert.pem
issue notsa ca "$plain_ext" notsa.cert.pem
# A TSA certificate for the P-256 key that expired in 2001: `openssl x509` cannot backdate,
# `openssl ca` can.
work=$(mktemp -d)
touch "$work/index.txt"
echo 01 > "$work/serial"
cat > "$work/ca.cnf" <<CNF
[ ca ]
default_ca = test
[ test ]
dir = $work
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = anything
[ anything ]
commonName = supplied
organizationName = optional
CNF
openssl req -new -key tsa-p256.pem -subj "/CN=test TSA expired/O=trailproof tests" -out "$work/req.csr"
openssl ca -config "$work/ca.cnf" -batch -notext -cert ca.pem -keyfile ca-key.pem \
  -in "$work/req.csr" -startdate 20000101000000Z -enddate 20010101000000Z \
  -extfile <(printf '%s\n' "$tsa_ext") -out tsa-expired.cert.pem
rm -r "$work"
