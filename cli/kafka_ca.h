// The kcron CA's side of `kcron tenant create|set NAME --kafka`: a client certificate for a
// Kafka-native tenant (subject CN=tenant.<name>, the principal its ACLs name), signed by the CA the
// broker trusts for mTLS, so a new tenant needs no broker restart. OpenSSL 3 (EVP, X509): an EC
// P-256 key made here, never leaving the files written for the tenant.
#pragma once

#include <string>

#include "kcron/result.h"

namespace kcron::cli {

struct IssuedCertificate {
  std::string key_pem;          // PKCS#8, unencrypted: the tenant's to protect
  std::string certificate_pem;  // the client certificate
  std::string ca_pem;           // the CA's certificate (the tenant's ssl.ca.location)
  std::string not_after;        // e.g. "Mar 11 10:00:00 2029 GMT"
  std::string serial;           // hex
};

// Signs a new client certificate for `common_name`, valid from five minutes ago for `days` days,
// with the CA in `ca_certificate_path` / `ca_key_path` (PEM). The errors name the file and what
// is wrong with it (unreadable, not a CA certificate, a key that is not the certificate's).
Result<IssuedCertificate> issue_client_certificate(const std::string& ca_certificate_path, const std::string& ca_key_path,
                                                   const std::string& common_name, int days);

// Writes DIR/client.key (0600), DIR/client.pem, DIR/ca.pem and DIR/client.properties (the
// librdkafka properties for the mTLS listener at `brokers`); creates DIR (0700) if needed.
Status write_tenant_client_files(const std::string& dir, const IssuedCertificate& issued, const std::string& brokers);

}  // namespace kcron::cli
