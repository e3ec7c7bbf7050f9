#ifndef QSTORE_CLEVELDB_SHIM_H
#define QSTORE_CLEVELDB_SHIM_H
// LevelDB's C API (Debian: libleveldb-dev, built with snappy).
#include <leveldb/c.h>
#endif
