#ifndef QSTORE_CMALLOC_H
#define QSTORE_CMALLOC_H
// The C library allocator's knobs the daemon sets (Docs/http.md, "Memory"). Outside glibc they
// do nothing and say so.

/// Caps glibc's malloc arenas at `arenas` (its default is 8 per core: each thread that meets a
/// locked arena makes another, and each keeps what it freed). 1 when set, 0 when not (not glibc).
int qstore_malloc_set_arenas(int arenas);
#endif
