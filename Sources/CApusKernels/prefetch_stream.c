#include "apus_kernels.h"
#include "prefetch_stream.h"

_Thread_local apus_prefetch_stream_state *apus_prefetch_current_stream;

size_t apus_prefetch_stream_size(void) { return (sizeof(apus_prefetch_stream_state) + 63) / 64 * 64; }

void apus_prefetch_stream_start(void *stream, const void *base, long byteCount) {
    apus_prefetch_stream_state *s = stream;
    s->base = base;
    s->length = byteCount > 0 ? byteCount : 0;
    atomic_store_explicit(&s->next, 0, memory_order_relaxed);
}

void apus_prefetch_stream_use(void *stream) { apus_prefetch_current_stream = stream; }

void *apus_prefetch_stream_current(void) { return apus_prefetch_current_stream; }

long apus_prefetch_stream_claimed(const void *stream) {
    const apus_prefetch_stream_state *s = stream;
    long next = atomic_load_explicit(&((apus_prefetch_stream_state *)s)->next, memory_order_relaxed);
    return next < s->length ? next : s->length;
}
