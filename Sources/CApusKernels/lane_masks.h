/// Lane masks shared by the kernels' table builders and vector loops (private to this target).
#ifndef APUS_LANE_MASKS_H
#define APUS_LANE_MASKS_H

#include <stdint.h>

/// Lanes `j` of a sixteen-lane vector starting at column `first` with `0 <= first + j < width`.
static inline uint16_t range_mask(long first, long width) {
    long lo = -first;
    long hi = width - first;
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (uint16_t)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

#endif
