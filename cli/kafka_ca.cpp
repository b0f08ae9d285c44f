#include "kafka_ca.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

namespace kcron::cli {
namespace {

template <auto Free>
struct Freer {
  template <typename T>
  void operator()(T* object) const {
    Free(object);
  }
};
using BioPtr = std::unique_ptr<BIO, Freer<&BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Freer<&X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Freer<&EVP_PKEY_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Freer<&BN_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Freer<&X509_EXTENSION_free>>;

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const auto size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

Result<std::string> read_text(const std::string& path, std::string_view what) {
  BioPtr file(BIO_new_file(path.c_str(), "r"));
  if (!file) return make_error("{} {}: cannot read it ({})", what, path, std::strerror(errno));
  BioPtr memory(BIO_new(BIO_s_mem()));
  char buffer[4096];
  for (int read = 0; (read = BIO_read(file.get(), buffer, sizeof buffer)) > 0;) BIO_write(memory.get(), buffer, read);
  return bio_text(memory.get());
}

Status add_extension(X509* certificate, X509V3_CTX& context, int nid, const char* value) {
  ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value));
  if (!extension || X509_add_ext(certificate, extension.get(), -1) != 1) return make_error("certificate extension {}", value);
  return Status::success();
}

Status write_file(const std::string& path, const std::string& content, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return make_error("cannot write {}: {}", path, std::strerror(errno));
  ::fchmod(fd, mode);
  std::size_t written = 0;
  while (written < content.size()) {
    const auto step = ::write(fd, content.data() + written, content.size() - written);
    if (step < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return make_error("cannot write {}: {}", path, std::strerror(errno));
    }
    written += static_cast<std::size_t>(step);
  }
  if (::close(fd) != 0) return make_error("cannot write {}: {}", path, std::strerror(errno));
  return Status::success();
}

}  // namespace

Result<IssuedCertificate> issue_client_certificate(const std::string& ca_certificate_path, const std::string& ca_key_path,
                                                   const std::string& common_name, int days) {
  if (days < 1 || days > 3650) return make_error("certificate days must be 1 to 3650, got {}", days);
  auto ca_pem = read_text(ca_certificate_path, "CA certificate");
  if (!ca_pem) return ca_pem.error();
  BioPtr ca_bio(BIO_new_mem_buf(ca_pem->data(), static_cast<int>(ca_pem->size())));
  X509Ptr ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
  if (!ca) return make_error("CA certificate {}: not a PEM certificate", ca_certificate_path);
  if (X509_check_ca(ca.get()) == 0) return make_error("CA certificate {}: it is not a CA certificate", ca_certificate_path);
  BioPtr key_bio(BIO_new_file(ca_key_path.c_str(), "r"));
  if (!key_bio) return make_error("CA key {}: cannot read it ({})", ca_key_path, std::strerror(errno));
  KeyPtr ca_key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!ca_key) return make_error("CA key {}: not an unencrypted PEM private key", ca_key_path);
  if (X509_check_private_key(ca.get(), ca_key.get()) != 1) {
    return make_error("CA key {} is not the key of CA certificate {}", ca_key_path, ca_certificate_path);
  }

  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return make_error("cannot make an EC P-256 key");
  X509Ptr certificate(X509_new());
  X509_set_version(certificate.get(), 2);
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return make_error("no random bytes for a serial number");
  serial_bytes[0] &= 0x7f;  // positive
  BnPtr serial(BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr));
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(certificate.get())) == nullptr) {
    return make_error("cannot set the certificate's serial number");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -300) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(certificate.get()), days, 0, nullptr) == nullptr) {
    return make_error("cannot set the certificate's validity");
  }
  // Never valid beyond the CA itself.
  if (ASN1_TIME_compare(X509_get0_notAfter(certificate.get()), X509_get0_notAfter(ca.get())) > 0 &&
      X509_set1_notAfter(certificate.get(), X509_get0_notAfter(ca.get())) != 1) {
    return make_error("cannot cap the certificate's validity at the CA's");
  }
  X509_set_pubkey(certificate.get(), key.get());
  X509_NAME* subject = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("kcron tenant"), -1, -1, 0);
  X509_set_issuer_name(certificate.get(), X509_get_subject_name(ca.get()));
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, ca.get(), certificate.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] :
       {std::pair{NID_basic_constraints, "critical,CA:FALSE"}, std::pair{NID_key_usage, "critical,digitalSignature"},
        std::pair{NID_ext_key_usage, "clientAuth"}, std::pair{NID_subject_key_identifier, "hash"},
        std::pair{NID_authority_key_identifier, "keyid"}}) {
    if (auto status = add_extension(certificate.get(), context, nid, value); !status) return status.error();
  }
  if (X509_sign(certificate.get(), ca_key.get(), EVP_sha256()) == 0) return make_error("signing the certificate failed");

  IssuedCertificate issued;
  BioPtr out(BIO_new(BIO_s_mem()));
  // The CA certificate re-encoded from what was parsed: never whatever else its file holds (a key).
  if (PEM_write_bio_X509(out.get(), ca.get()) != 1) return make_error("cannot encode the CA certificate");
  issued.ca_pem = bio_text(out.get());
  out.reset(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return make_error("cannot encode the key");
  issued.key_pem = bio_text(out.get());
  out.reset(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(out.get(), certificate.get()) != 1) return make_error("cannot encode the certificate");
  issued.certificate_pem = bio_text(out.get());
  out.reset(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(out.get(), X509_get0_notAfter(certificate.get()));
  issued.not_after = bio_text(out.get());
  char* hex = BN_bn2hex(serial.get());
  issued.serial = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  return issued;
}

Status write_tenant_client_files(const std::string& dir, const IssuedCertificate& issued, const std::string& brokers) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return make_error("cannot create {}: {}", dir, error.message());
  ::chmod(dir.c_str(), 0700);
  const std::filesystem::path base(dir);
  const auto absolute = std::filesystem::absolute(base, error);
  const auto& where = error ? base : absolute;
  if (auto status = write_file((base / "client.key").string(), issued.key_pem, 0600); !status) return status;
  if (auto status = write_file((base / "client.pem").string(), issued.certificate_pem, 0644); !status) return status;
  if (auto status = write_file((base / "ca.pem").string(), issued.ca_pem, 0644); !status) return status;
  const auto properties = fmt::format(
      "# librdkafka properties of this tenant's Kafka client (mTLS). Keep client.key secret.\n"
      "bootstrap.servers={}\nsecurity.protocol=SSL\nssl.ca.location={}\nssl.certificate.location={}\nssl.key.location={}\n",
      brokers, (where / "ca.pem").string(), (where / "client.pem").string(), (where / "client.key").string());
  return write_file((base / "client.properties").string(), properties, 0644);
}

}  // namespace kcron::cli
