/// The read-ahead stream of `apus_prefetch_stream_use` (apus_kernels.h), for the kernels that
/// prefetch from it: private to this target.
#ifndef APUS_PREFETCH_STREAM_H
#define APUS_PREFETCH_STREAM_H

#include <stdatomic.h>

typedef struct {
    /// Bytes handed out so far (may pass `length`: claims past the end get nothing).
    _Atomic long next;
    long length;
    const char *base;
} apus_prefetch_stream_state;

extern _Thread_local apus_prefetch_stream_state *apus_prefetch_current_stream;

/// Claims up to `bytes` of the calling thread's stream: returns the lines (64 bytes) claimed and
/// sets `*start` to the first, or returns 0 when there is no stream or nothing left of it.
static inline long apus_prefetch_claim(long bytes, const char **start) {
    apus_prefetch_stream_state *s = apus_prefetch_current_stream;
    if (!s || atomic_load_explicit(&s->next, memory_order_relaxed) >= s->length) return 0;
    long at = atomic_fetch_add_explicit(&s->next, bytes, memory_order_relaxed);
    if (at >= s->length) return 0;
    *start = s->base + at;
    long claimed = s->length - at < bytes ? s->length - at : bytes;
    return (claimed + 63) / 64;
}

#endif
