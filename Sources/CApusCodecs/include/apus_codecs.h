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
    uint8_t *pixels;             // malloc'd RGB, width*height*3 bytes; caller frees with apus_free
    long error_offset;           // byte offset reached in the input when an error happened, or -1
    char message[200];
} apus_decode_result;

apus_codec_status apus_decode_jpeg(const uint8_t *data, size_t size, const apus_decode_options *options,
                                   apus_decode_result *result);
apus_codec_status apus_decode_png(const uint8_t *data, size_t size, const apus_decode_options *options,
                                  apus_decode_result *result);
void apus_free(void *pointer);

#endif
