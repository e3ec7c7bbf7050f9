#ifndef QSTORE_COPENSSL_SHIM_H
#define QSTORE_COPENSSL_SHIM_H
// Only the digest API of libcrypto: Qstore uses OpenSSL for hashing, nothing else.
#include <openssl/evp.h>
#endif
