#ifndef QSTORE_CLOCKING_H
#define QSTORE_CLOCKING_H
// Happens-before edges told to ThreadSanitizer for a lock it cannot see (Sources/Locking): no-ops
// unless this target is built with -fsanitize=thread (`swift build --sanitize=thread`).
void qstore_tsan_acquire(void *address);
void qstore_tsan_release(void *address);
#endif
