#include "common/hmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

namespace katy {

std::string LowerHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(bytes.size() * 2, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    hex[2 * i] = kDigits[byte >> 4];
    hex[2 * i + 1] = kDigits[byte & 0xF];
  }
  return hex;
}

namespace {

// HMAC with the keyed halves precomputed (RFC 2104): H((K ^ opad) || H((K ^ ipad) || data)).
// OpenSSL 3's one-shot HMAC() looks the digest up by name in its provider tables on every call
// (a lock and a hash lookup), which cost more than the hashing itself for webhook-sized bodies.
// Each thread keeps one per digest for the last key it saw: callers use one app secret.
class KeyedDigest {
 public:
  explicit KeyedDigest(const char* digest_name)
      : md_(EVP_MD_fetch(nullptr, digest_name, nullptr)),
        inner_(EVP_MD_CTX_new()),
        outer_(EVP_MD_CTX_new()),
        work_(EVP_MD_CTX_new()) {}
  ~KeyedDigest() {
    EVP_MD_CTX_free(work_);
    EVP_MD_CTX_free(outer_);
    EVP_MD_CTX_free(inner_);
    EVP_MD_free(md_);
    OPENSSL_cleanse(key_.data(), key_.size());
  }
  KeyedDigest(const KeyedDigest&) = delete;
  KeyedDigest& operator=(const KeyedDigest&) = delete;

  std::string Hex(std::string_view key, std::string_view data) {
    if (!keyed_ || key != key_) Rekey(key);
    unsigned char inner_hash[EVP_MAX_MD_SIZE];
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned inner_len = 0;
    unsigned len = 0;
    EVP_MD_CTX_copy_ex(work_, inner_);
    EVP_DigestUpdate(work_, data.data(), data.size());
    EVP_DigestFinal_ex(work_, inner_hash, &inner_len);
    EVP_MD_CTX_copy_ex(work_, outer_);
    EVP_DigestUpdate(work_, inner_hash, inner_len);
    EVP_DigestFinal_ex(work_, digest, &len);
    return LowerHex(std::string_view(reinterpret_cast<const char*>(digest), len));
  }

 private:
  void Rekey(std::string_view key) {
    const auto block = static_cast<size_t>(EVP_MD_get_block_size(md_));
    unsigned char k[EVP_MAX_MD_SIZE * 2] = {};  // >= every block size this is used with (64)
    if (key.size() > block) {
      unsigned len = 0;
      EVP_Digest(key.data(), key.size(), k, &len, md_, nullptr);
    } else {
      std::memcpy(k, key.data(), key.size());
    }
    unsigned char pad[sizeof k];
    for (size_t i = 0; i < block; ++i) pad[i] = k[i] ^ 0x36;
    EVP_DigestInit_ex(inner_, md_, nullptr);
    EVP_DigestUpdate(inner_, pad, block);
    for (size_t i = 0; i < block; ++i) pad[i] = k[i] ^ 0x5c;
    EVP_DigestInit_ex(outer_, md_, nullptr);
    EVP_DigestUpdate(outer_, pad, block);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(key_.data(), key_.size());
    key_.assign(key);
    keyed_ = true;
  }

  EVP_MD* md_;
  EVP_MD_CTX* inner_;
  EVP_MD_CTX* outer_;
  EVP_MD_CTX* work_;
  std::string key_;
  bool keyed_ = false;
};

}  // namespace

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  thread_local KeyedDigest sha256("SHA256");
  return sha256.Hex(key, data);
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    hex += kDigits[digest[i] >> 4];
    hex += kDigits[digest[i] & 0xF];
  }
  return hex;
}

std::string HmacSha1Hex(std::string_view key, std::string_view data) {
  thread_local KeyedDigest sha1("SHA1");
  return sha1.Hex(key, data);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace katy
