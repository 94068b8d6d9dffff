// JPEG and PNG decoding into 8-bit RGB exactly as Pillow's Image.open(f).convert("RGB").
//
// libjpeg and libpng report fatal errors through a callback that must not return; their
// defaults call exit() (libjpeg) or abort. Here every such callback longjmps back into the
// function that started the decode, which frees what it allocated and returns a status code.
#include "apus_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

void apus_free(void *pointer) { free(pointer); }

static void set_message(apus_decode_result *result, const char *text) {
    snprintf(result->message, sizeof(result->message), "%s", text);
}

// Pillow's CMYK;I unpacker inverts every channel, then cmyk2rgb computes
// CLIP8(nk - MULDIV255(c, nk)) with nk = 255 - k. Pillow always assumes Adobe (inverted)
// polarity for 4-channel JPEGs, whatever the APP14 marker says.
static inline uint8_t cmyk_channel(uint8_t raw_c, uint8_t raw_k) {
    int c = 255 - raw_c;
    int nk = raw_k;  // 255 - (255 - raw_k)
    int tmp = c * nk + 128;
    int v = nk - (((tmp >> 8) + tmp) >> 8);
    return (uint8_t)(v <= 0 ? 0 : (v < 256 ? v : 255));
}

// MARK: - JPEG

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    apus_codec_status status;
    int strict;
    apus_decode_result *result;
    const uint8_t *base;
} apus_jpeg_error;

typedef struct {
    struct jpeg_progress_mgr pub;
    int max_scans;
} apus_jpeg_progress;

static long jpeg_offset(j_decompress_ptr cinfo, const uint8_t *base) {
    if (cinfo->src == NULL || cinfo->src->next_input_byte == NULL) return -1;
    return (long)(cinfo->src->next_input_byte - base);
}

static void apus_jpeg_fail(j_common_ptr cinfo, apus_codec_status status, const char *text) {
    apus_jpeg_error *err = (apus_jpeg_error *)cinfo->err;
    if (err->status == APUS_CODEC_OK) {
        err->status = status;
        if (text != NULL) {
            set_message(err->result, text);
        } else {
            char buffer[JMSG_LENGTH_MAX];
            (*cinfo->err->format_message)(cinfo, buffer);
            set_message(err->result, buffer);
        }
        if (!cinfo->is_decompressor) {
            err->result->error_offset = -1;
        } else {
            err->result->error_offset = jpeg_offset((j_decompress_ptr)cinfo, err->base);
        }
    }
    longjmp(err->jump, 1);
}

static void apus_jpeg_error_exit(j_common_ptr cinfo) {
    int code = cinfo->err->msg_code;
    apus_codec_status status = APUS_CODEC_CORRUPT;
    if (code == JERR_EMPTY_IMAGE) status = APUS_CODEC_EMPTY;
    if (code == JERR_NO_SOI) status = APUS_CODEC_NOT_IMAGE;
    if (code == JERR_OUT_OF_MEMORY) status = APUS_CODEC_OUT_OF_MEMORY;
    if (code == JERR_BAD_PRECISION || code == JERR_CONVERSION_NOTIMPL) status = APUS_CODEC_UNSUPPORTED;
    apus_jpeg_fail(cinfo, status, NULL);
}

static void apus_jpeg_emit_message(j_common_ptr cinfo, int level) {
    apus_jpeg_error *err = (apus_jpeg_error *)cinfo->err;
    if (level < 0) {
        // A warning means the entropy-coded data was corrupt and libjpeg made something up.
        err->pub.num_warnings++;
        if (err->strict) apus_jpeg_fail(cinfo, APUS_CODEC_CORRUPT, NULL);
    }
    // Trace messages (level >= 0) are ignored.
}

static void apus_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void apus_jpeg_init_source(j_decompress_ptr cinfo) { (void)cinfo; }

// The whole file is in memory, so a request for more data means the file is truncated. libjpeg's
// own memory source would insert a fake EOI and carry on with grey blocks; Pillow raises
// "image file is truncated" instead, and so do we.
static boolean apus_jpeg_fill_input_buffer(j_decompress_ptr cinfo) {
    apus_jpeg_fail((j_common_ptr)cinfo, APUS_CODEC_TRUNCATED, "JPEG data ends before the image is complete");
    return FALSE;
}

static void apus_jpeg_skip_input_data(j_decompress_ptr cinfo, long count) {
    if (count <= 0) return;
    if ((size_t)count > cinfo->src->bytes_in_buffer) {
        cinfo->src->next_input_byte += cinfo->src->bytes_in_buffer;
        cinfo->src->bytes_in_buffer = 0;
        apus_jpeg_fail((j_common_ptr)cinfo, APUS_CODEC_TRUNCATED, "JPEG marker segment runs past the end of the data");
    }
    cinfo->src->next_input_byte += count;
    cinfo->src->bytes_in_buffer -= (size_t)count;
}

static void apus_jpeg_term_source(j_decompress_ptr cinfo) { (void)cinfo; }

static void apus_jpeg_progress_monitor(j_common_ptr cinfo) {
    apus_jpeg_progress *progress = (apus_jpeg_progress *)cinfo->progress;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > progress->max_scans) {
        char text[120];
        snprintf(text, sizeof(text), "progressive JPEG has more than %d scans", progress->max_scans);
        apus_jpeg_fail(cinfo, APUS_CODEC_TOO_MANY_SCANS, text);
    }
}

apus_codec_status apus_decode_jpeg(const uint8_t *data, size_t size, const apus_decode_options *options,
                                   apus_decode_result *result) {
    struct jpeg_decompress_struct cinfo;
    apus_jpeg_error err;
    apus_jpeg_progress progress;
    struct jpeg_source_mgr source;
    uint8_t *volatile output = NULL;
    uint8_t *volatile row = NULL;

    memset(result, 0, sizeof(*result));
    result->error_offset = -1;
    memset(&cinfo, 0, sizeof(cinfo));
    memset(&err, 0, sizeof(err));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = apus_jpeg_error_exit;
    err.pub.emit_message = apus_jpeg_emit_message;
    err.pub.output_message = apus_jpeg_output_message;
    err.strict = options->strict_warnings;
    err.result = result;
    err.base = data;
    err.status = APUS_CODEC_OK;

    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(output);
        free(row);
        result->pixels = NULL;
        return err.status == APUS_CODEC_OK ? APUS_CODEC_CORRUPT : err.status;
    }

    jpeg_create_decompress(&cinfo);
    source.init_source = apus_jpeg_init_source;
    source.fill_input_buffer = apus_jpeg_fill_input_buffer;
    source.skip_input_data = apus_jpeg_skip_input_data;
    source.resync_to_restart = jpeg_resync_to_restart;
    source.term_source = apus_jpeg_term_source;
    source.next_input_byte = data;
    source.bytes_in_buffer = size;
    cinfo.src = &source;
    progress.pub.progress_monitor = apus_jpeg_progress_monitor;
    progress.max_scans = options->max_scans > 0 ? options->max_scans : 1;
    cinfo.progress = &progress.pub;

    jpeg_read_header(&cinfo, TRUE);
    result->width = (int)cinfo.image_width;
    result->height = (int)cinfo.image_height;
    result->source_channels = cinfo.num_components;
    if (cinfo.image_width == 0 || cinfo.image_height == 0) {
        apus_jpeg_fail((j_common_ptr)&cinfo, APUS_CODEC_EMPTY, "JPEG frame has zero width or height");
    }
    uint64_t pixels = (uint64_t)cinfo.image_width * (uint64_t)cinfo.image_height;
    if (options->max_pixels != 0 && pixels > options->max_pixels) {
        char text[160];
        snprintf(text, sizeof(text), "JPEG is %ux%u = %llu pixels, above the limit of %llu", cinfo.image_width,
                 cinfo.image_height, (unsigned long long)pixels, (unsigned long long)options->max_pixels);
        apus_jpeg_fail((j_common_ptr)&cinfo, APUS_CODEC_TOO_LARGE, text);
    }
    switch (cinfo.num_components) {
    case 1: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: cinfo.out_color_space = JCS_RGB; break;
    case 4: cinfo.out_color_space = JCS_CMYK; break;
    default: {
        char text[120];
        snprintf(text, sizeof(text), "JPEG with %d components (Pillow decodes 1, 3 or 4)", cinfo.num_components);
        apus_jpeg_fail((j_common_ptr)&cinfo, APUS_CODEC_UNSUPPORTED, text);
    }
    }
    // Pillow's defaults: islow IDCT, fancy upsampling, no DCT scaling.
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    int denom = options->dct_scale_denom;
    if (denom == 2 || denom == 4 || denom == 8) {
        cinfo.scale_num = 1;
        cinfo.scale_denom = (unsigned int)denom;
    }

    jpeg_start_decompress(&cinfo);
    int width = (int)cinfo.output_width, height = (int)cinfo.output_height;
    int components = cinfo.output_components;
    result->width = width;
    result->height = height;
    size_t out_bytes = (size_t)width * (size_t)height * 3;
    output = malloc(out_bytes > 0 ? out_bytes : 1);
    row = malloc((size_t)width * (size_t)components);
    if (output == NULL || row == NULL) {
        apus_jpeg_fail((j_common_ptr)&cinfo, APUS_CODEC_OUT_OF_MEMORY, "cannot allocate the decoded image");
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {row};
        int y = (int)cinfo.output_scanline;
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
            apus_jpeg_fail((j_common_ptr)&cinfo, APUS_CODEC_TRUNCATED, "JPEG scanline could not be read");
        }
        uint8_t *out = output + (size_t)y * (size_t)width * 3;
        const uint8_t *in = row;
        if (components == 1) {
            for (int x = 0; x < width; x++) { out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x]; }
        } else if (components == 3) {
            memcpy(out, in, (size_t)width * 3);
        } else {
            for (int x = 0; x < width; x++) {
                uint8_t k = in[4 * x + 3];
                out[3 * x] = cmyk_channel(in[4 * x], k);
                out[3 * x + 1] = cmyk_channel(in[4 * x + 1], k);
                out[3 * x + 2] = cmyk_channel(in[4 * x + 2], k);
            }
        }
    }
    // Like Pillow, the image is complete once every scanline is out: a missing EOI marker or
    // trailing bytes are not an error, so jpeg_finish_decompress is not called.
    jpeg_destroy_decompress(&cinfo);
    free(row);
    result->pixels = output;
    return APUS_CODEC_OK;
}

// MARK: - PNG

typedef struct {
    apus_codec_status status;
    apus_decode_result *result;
    const uint8_t *data;
    size_t size;
    size_t position;
} apus_png_state;

static void apus_png_error(png_structp png, png_const_charp message) {
    apus_png_state *state = (apus_png_state *)png_get_error_ptr(png);
    if (state->status == APUS_CODEC_OK) {
        state->status = APUS_CODEC_CORRUPT;
        if (strstr(message, "CRC") != NULL) state->status = APUS_CODEC_BAD_CRC;
        set_message(state->result, message);
        state->result->error_offset = (long)state->position;
    }
    png_longjmp(png, 1);
}

// libpng warnings concern ancillary chunks (bad gAMA, sRGB profile mismatch, …) that Pillow
// ignores as well; they do not change the pixels.
static void apus_png_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

static void apus_png_read(png_structp png, png_bytep out, size_t length) {
    apus_png_state *state = (apus_png_state *)png_get_io_ptr(png);
    if (length > state->size - state->position) {
        if (state->status == APUS_CODEC_OK) {
            state->status = APUS_CODEC_TRUNCATED;
            set_message(state->result, "PNG data ends before the image is complete");
            state->result->error_offset = (long)state->size;
        }
        png_error(png, "truncated");
    }
    memcpy(out, state->data + state->position, length);
    state->position += length;
}

static uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

apus_codec_status apus_decode_png(const uint8_t *data, size_t size, const apus_decode_options *options,
                                  apus_decode_result *result) {
    memset(result, 0, sizeof(*result));
    result->error_offset = -1;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        set_message(result, "not a PNG signature");
        result->error_offset = 0;
        return APUS_CODEC_NOT_IMAGE;
    }
    // Read the size from IHDR ourselves so that the pixel limit and the zero-size check run before
    // libpng allocates anything.
    if (size < 33) {
        set_message(result, "PNG ends inside the IHDR chunk");
        result->error_offset = (long)size;
        return APUS_CODEC_TRUNCATED;
    }
    if (be32(data + 8) != 13 || memcmp(data + 12, "IHDR", 4) != 0) {
        set_message(result, "PNG does not start with a 13-byte IHDR chunk");
        result->error_offset = 8;
        return APUS_CODEC_CORRUPT;
    }
    uint32_t header_width = be32(data + 16), header_height = be32(data + 20);
    result->width = (int)(header_width > 0x7fffffff ? 0x7fffffff : header_width);
    result->height = (int)(header_height > 0x7fffffff ? 0x7fffffff : header_height);
    if (header_width == 0 || header_height == 0) {
        set_message(result, "PNG IHDR has zero width or height");
        result->error_offset = 16;
        return APUS_CODEC_EMPTY;
    }
    uint64_t pixels = (uint64_t)header_width * (uint64_t)header_height;
    if (options->max_pixels != 0 && pixels > options->max_pixels) {
        snprintf(result->message, sizeof(result->message), "PNG is %ux%u = %llu pixels, above the limit of %llu",
                 header_width, header_height, (unsigned long long)pixels, (unsigned long long)options->max_pixels);
        result->error_offset = 16;
        return APUS_CODEC_TOO_LARGE;
    }

    apus_png_state state = {APUS_CODEC_OK, result, data, size, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, apus_png_error, apus_png_warning);
    if (png == NULL) {
        set_message(result, "cannot create the PNG reader");
        return APUS_CODEC_OUT_OF_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_message(result, "cannot create the PNG reader");
        return APUS_CODEC_OUT_OF_MEMORY;
    }
    uint8_t *volatile output = NULL;
    uint8_t *volatile raw = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(output);
        free(raw);
        free(rows);
        result->pixels = NULL;
        return state.status == APUS_CODEC_OK ? APUS_CODEC_CORRUPT : state.status;
    }
    png_set_read_fn(png, &state, apus_png_read);
    // Stricter than Pillow (which checks chunk CRCs only before IDAT): every CRC must match.
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    uint8_t palette[256 * 3];
    memset(palette, 0, sizeof(palette));  // Pillow maps indices past the PLTE entries to black.
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_colorp entries = NULL;
        int count = 0;
        if (png_get_PLTE(png, info, &entries, &count) & PNG_INFO_PLTE) {
            for (int i = 0; i < count && i < 256; i++) {
                palette[3 * i] = entries[i].red;
                palette[3 * i + 1] = entries[i].green;
                palette[3 * i + 2] = entries[i].blue;
            }
        }
        if (bit_depth < 8) png_set_packing(png);
    } else if (bit_depth < 8) {
        // Pillow's L;1/L;2/L;4 unpackers replicate bits (v*255, v*85, v*17), as libpng does here.
        png_set_expand_gray_1_2_4_to_8(png);
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int channels = png_get_channels(png, info);
    int bytes_per_sample = bit_depth == 16 ? 2 : 1;
    result->source_channels = color_type == PNG_COLOR_TYPE_PALETTE ? 3 : channels;
    if (rowbytes < (size_t)width * (size_t)channels * (size_t)bytes_per_sample) {
        png_error(png, "unexpected PNG row size");
    }

    output = malloc((size_t)width * (size_t)height * 3);
    if (output == NULL) png_error(png, "cannot allocate the decoded image");
    if (passes > 1) {
        raw = malloc(rowbytes * (size_t)height);
        rows = malloc(sizeof(png_bytep) * (size_t)height);
        if (raw == NULL || rows == NULL) png_error(png, "cannot allocate the interlaced image");
        for (png_uint_32 y = 0; y < height; y++) rows[y] = raw + (size_t)y * rowbytes;
        png_read_image(png, rows);
    } else {
        raw = malloc(rowbytes);
        if (raw == NULL) png_error(png, "cannot allocate a PNG row");
    }
    for (png_uint_32 y = 0; y < height; y++) {
        const uint8_t *in;
        if (passes > 1) {
            in = rows[y];
        } else {
            png_read_row(png, raw, NULL);
            in = raw;
        }
        uint8_t *out = output + (size_t)y * (size_t)width * 3;
        if (color_type == PNG_COLOR_TYPE_PALETTE) {
            for (png_uint_32 x = 0; x < width; x++) {
                const uint8_t *entry = palette + 3 * in[x];
                out[3 * x] = entry[0];
                out[3 * x + 1] = entry[1];
                out[3 * x + 2] = entry[2];
            }
        } else if (channels <= 2) {
            // Gray (+alpha, which convert("RGB") drops). 16-bit gray is Pillow's I;16, whose
            // conversion to RGB clamps at 255; 16-bit gray+alpha is read as LA;16B (high byte).
            size_t stride = (size_t)channels * (size_t)bytes_per_sample;
            for (png_uint_32 x = 0; x < width; x++) {
                const uint8_t *p = in + x * stride;
                uint8_t v;
                if (bit_depth == 16) {
                    v = channels == 1 ? (p[0] != 0 ? 255 : p[1]) : p[0];
                } else {
                    v = p[0];
                }
                out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
            }
        } else {
            // RGB / RGBA: alpha is dropped, 16-bit samples keep their high byte (RGB;16B).
            size_t stride = (size_t)channels * (size_t)bytes_per_sample;
            for (png_uint_32 x = 0; x < width; x++) {
                const uint8_t *p = in + x * stride;
                out[3 * x] = p[0];
                out[3 * x + 1] = p[bytes_per_sample];
                out[3 * x + 2] = p[2 * bytes_per_sample];
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    free(rows);
    result->pixels = output;
    result->width = (int)width;
    result->height = (int)height;
    return APUS_CODEC_OK;
}
