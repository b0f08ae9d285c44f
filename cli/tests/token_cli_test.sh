#!/bin/sh
# `kcron token`: keygen writes a 0600 PEM and a JWKS, adds a second key to it and refuses a
# duplicate kid; issue prints tokens that `token verify` (the kcron_auth verifier) accepts; the
# errors a user reads for a bad role, ttl and algorithm are pinned.
#   token_cli_test.sh KCRON WORKDIR
set -eu
kcron=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cd "$work"
umask 022

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_error EXPECTED-STDERR COMMAND...: exit code 1 and exactly that error.
expect_error() {
  expected=$1
  shift
  if out=$("$@" 2>&1 >/dev/null); then fail "succeeded: $*"; else code=$?; fi
  [ "$code" -eq 1 ] || fail "exit $code, not 1: $*"
  [ "$out" = "$expected" ] || fail "stderr of '$*' was '$out', not '$expected'"
}

out=$("$kcron" token keygen --alg ES256 --kid k1 --private k1.pem --jwks jwks.json)
[ "$out" = "key 'k1' (ES256): private key in k1.pem (mode 0600), public key in jwks.json" ] || fail "keygen said '$out'"
[ "$(stat -c %a k1.pem)" = 600 ] || fail "k1.pem has mode $(stat -c %a k1.pem)"
"$kcron" token keygen --alg EdDSA --private k2.pem --jwks jwks.json >/dev/null
[ "$(grep -c '"kid"' jwks.json)" = 2 ] || fail "jwks.json does not hold two keys"
expect_error "kcron: jwks.json: the JWKS already has a key with kid 'k1'" \
  "$kcron" token keygen --alg RS256 --kid k1 --private k3.pem --jwks jwks.json
[ ! -e k3.pem ] || fail "a refused keygen left k3.pem"
expect_error "kcron: k1.pem exists: kcron does not overwrite a private key (move it away first)" \
  "$kcron" token keygen --alg ES256 --kid k9 --private k1.pem --jwks jwks.json

token=$("$kcron" token issue --tenant acme --role member --role viewer --key k1.pem --kid k1 --ttl 15m --iss me --aud kcron-api)
out=$("$kcron" token verify "$token" --jwks jwks.json --iss me --aud kcron-api)
printf '%s\n' "$out" | grep -qx 'subject: kcron-cli' || fail "verify printed '$out'"
printf '%s\n' "$out" | grep -qx 'tenant: acme' || fail "verify printed '$out'"
printf '%s\n' "$out" | grep -qx 'roles: member, viewer' || fail "verify printed '$out'"
printf '%s\n' "$out" | grep -qx 'key: k1' || fail "verify printed '$out'"
# Without --kid, issue names the key by its thumbprint, as keygen did.
token=$("$kcron" token issue --tenant acme --role admin --sub ci --key k2.pem --ttl 1h)
"$kcron" token verify "$token" --jwks jwks.json | grep -qx 'subject: ci' || fail "the EdDSA token does not verify"
expect_error "kcron: token has no aud claim; kcron-api expects audience 'other'" "$kcron" token verify "$token" --jwks jwks.json --aud other

expect_error "kcron: --role 'boss' is not one of viewer, member, operator, admin, system" \
  "$kcron" token issue --tenant acme --role boss --key k1.pem
expect_error "kcron: --ttl '90x' is not a duration like 30s, 15m, 1h, 7d or 1h30m" \
  "$kcron" token issue --tenant acme --role admin --key k1.pem --ttl 90x
expect_error "kcron: k2.pem: the PEM holds a key that signs EdDSA, not ES256" \
  "$kcron" token issue --tenant acme --role admin --key k2.pem --alg ES256
expect_error "kcron: tenant name \"Acme\" has \"A\": only a-z, 0-9 and '-' are allowed" \
  "$kcron" token issue --tenant Acme --role admin --key k1.pem

printf '0123456789abcdef0123456789abcdef0123' >secret
token=$("$kcron" token issue --tenant acme --role system --key secret --alg HS256)
"$kcron" token verify "$token" --secret secret | grep -qx 'key: (no kid)' || fail "the HS256 token does not verify"
expect_error "kcron: token algorithm HS256 is refused: shared-secret tokens are allowed only in development" \
  "$kcron" token verify "$token" --jwks jwks.json
echo "token CLI: OK"
