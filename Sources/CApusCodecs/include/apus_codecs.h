#ifndef APUS_CODECS_H
#define APUS_CODECS_H

#include <stddef.h>
#include <stdint.h>

/// Outcome of a decode. Every libjpeg/libpng failure is caught inside C (setjmp/longjmp)
/// and reported as one of these codes plus a message; nothing ever calls exit().
typedef enum {
    APUS_CODEC_OK = 0,
    APUS_CODEC_NOT_IMAGE = 1,      // signature is neither JPEG nor PNG
    APUS_CODEC_TRUNCATED = 2,      // data ended before the image did
    APUS_CODEC_CORRUPT = 3,        // decoder error or (strict mode) corrupt-data warning
    APUS_CODEC_TOO_LARGE = 4,      // width*height above the configured pixel limit
    APUS_CODEC_EMPTY = 5,          // zero width or height
    APUS_CODEC_UNSUPPORTED = 6,    // valid file using a feature PIL does not decode either
    APUS_CODEC_OUT_OF_MEMORY = 7,
    APUS_CODEC_TOO_MANY_SCANS = 8, // progressive JPEG with more scans than allowed
    APUS_CODEC_BAD_CRC = 9         // PNG chunk checksum mismatch
} apus_codec_status;

typedef struct {
    uint64_t max_pixels;         // 0 = no limit
    int max_scans;               // progressive JPEG scan cap (>0)
    int strict_warnings;         // 1: libjpeg corrupt-data warnings are errors
    int dct_scale_denom;         // 1 (exact), 2, 4 or 8 (approximate libjpeg DCT scaling)
} apus_decode_options;

typedef struct {
    int width;
    int height;
    int source_channels;         // channels in the file (1, 2, 3 or 4)
    uint8_t *pixels;             // PNG: malloc'd RGB, width*height*3 bytes, freed with apus_free; JPEG: NULL
    long error_offset;           // byte offset reached in the input when an error happened, or -1
    char message[200];
} apus_decode_result;

apus_codec_status apus_decode_png(const uint8_t *data, size_t size, const apus_decode_options *options,
                                  apus_decode_result *result);
void apus_free(void *pointer);

/// Called once the JPEG's output size is known, before any scanline; nonzero aborts the decode
/// with APUS_CODEC_OUT_OF_MEMORY.
typedef int (*apus_jpeg_begin_callback)(void *context, int width, int height);
/// Receives `row_count` decoded RGB scanlines starting at `first_row`, `stride` bytes apart. The
/// buffer is reused for the next batch; at least 64 readable bytes follow the last row.
typedef void (*apus_jpeg_rows_callback)(void *context, int first_row, int row_count, const uint8_t *rows,
                                        size_t stride);

/// Decodes a JPEG as Pillow does (islow IDCT, fancy upsampling; gray replicated, CMYK as Adobe
/// CMYK;I) with the pixel, scan and strictness checks of `options`, handing the RGB scanlines to
/// `rows` in batches of up to `batch_rows`; nothing image-sized is kept. result->pixels is NULL.
apus_codec_status apus_decode_jpeg_rows(const uint8_t *data, size_t size, const apus_decode_options *options,
                                        apus_decode_result *result, int batch_rows, apus_jpeg_begin_callback begin,
                                        apus_jpeg_rows_callback rows, void *context);

/// Pillow's horizontal resampling pass (ImagingResampleHorizontal_8bpc) on `row_count` interleaved
/// RGB rows: out[j] = clip8((1 << 21) + sum_t in[start[j] + t] * weights[j * weight_stride + t]),
/// per channel, in Int32 arithmetic identical to Pillow's. `weight_stride` is a multiple of 4 and
/// the weights past each output's tap count are zero. Loads never go past `in_end`.
void apus_resample_horizontal_rgb(const uint8_t *in, size_t in_stride, const uint8_t *in_end, int row_count,
                                  uint8_t *out, size_t out_stride, int out_width, const int32_t *start,
                                  const int32_t *tap_count, const int32_t *weights, int weight_stride);

/// Pillow's vertical resampling pass for output rows [first_out, end_out): output row y is
/// clip8((1 << 21) + sum_t in[(start[y] + t) * row_bytes + i] * weights[y * weight_stride + t]).
void apus_resample_vertical(const uint8_t *in, size_t row_bytes, uint8_t *out, int first_out, int end_out,
                            const int32_t *start, const int32_t *tap_count, const int32_t *weights,
                            int weight_stride);

/// 1 when the AVX2 kernels are in use (CPU support), else 0; `disable` != 0 forces the portable
/// kernels (for tests comparing both).
int apus_resample_simd(int disable);

#endif
