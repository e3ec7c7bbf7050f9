#include "clocking.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QSTORE_TSAN 1
#endif
#endif

#ifdef QSTORE_TSAN
// The ThreadSanitizer runtime's annotation interface (compiler-rt, tsan_interface.h).
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void qstore_tsan_acquire(void *address) { __tsan_acquire(address); }
void qstore_tsan_release(void *address) { __tsan_release(address); }
#else
void qstore_tsan_acquire(void *address) { (void)address; }
void qstore_tsan_release(void *address) { (void)address; }
#endif
