#!/usr/bin/env bash
# Rebuilds the report-signing test keys and certificates (TEST ONLY, committed in clear).
# Private keys are PKCS#8 PEM, public keys SubjectPublicKeyInfo PEM. Certificates last 100
# years so the committed files keep verifying; expiry is tested with an injected clock.
set -euo pipefail
cd "$(dirname "$0")"
openssl genpkey -algorithm ed25519 -out ed25519.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out p256.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa2048.pem
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.pem
for k in ed25519 p256 rsa2048; do openssl pkey -in $k.pem -pubout -out $k.pub.pem; done
# Two CAs: the auditors' CA, and another one nobody trusts here.
for ca in ca other-ca; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $ca-key.pem
  openssl req -x509 -new -key $ca-key.pem -subj "/CN=trailproof test $ca" -days 36500 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
    -out $ca.pem
done
# Signer certificates: one per key, issued by the CA; p256 also by the other CA.
issue() { # key ca out
  openssl req -new -key $1.pem -subj "/CN=auditor $1/O=trailproof tests" -out tmp.csr
  openssl x509 -req -in tmp.csr -CA $2.pem -CAkey $2-key.pem -days 36500 -set_serial 0x$(openssl rand -hex 8) \
    -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n') -out $3
  rm tmp.csr
}
issue ed25519 ca ed25519.cert.pem
issue p256 ca p256.cert.pem
issue rsa2048 ca rsa2048.cert.pem
issue p256 other-ca p256.other-ca.cert.pem
