#ifndef QSTORE_COPENSSL_SHIM_H
#define QSTORE_COPENSSL_SHIM_H
// Only the digest APIs of libcrypto: Qstore uses OpenSSL for hashing, nothing else.
// SHA256_Init/Update/Final are deprecated in OpenSSL 3 but hash on a stack context
// with no allocation or provider lookup, which matters for small blocks (see
// Docs/benchmarks.md). Deprecation is silenced here, for this header only.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/evp.h>
#include <openssl/sha.h>
#endif
