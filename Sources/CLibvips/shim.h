// libvips (Debian: libvips-dev). Its calls take NULL-terminated optional arguments (C varargs),
// which Swift cannot call: these wrappers name the options QpiC uses.
#include <vips/vips.h>

/// libvips' warnings (e.g. "heifload: ignoring nclx profile") go nowhere: a failure comes back
/// through its error buffer, and a daemon's standard error is not a place for a library's chatter.
static inline void qv_quiet(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data) {}

static inline int qv_init(void) {
    if (VIPS_INIT("qstore")) return -1;
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO, qv_quiet, NULL);
    // Only the loaders of the formats QpiC admits; no cache holding operations (and metadata) of past requests.
    vips_block_untrusted_set(TRUE);
    vips_cache_set_max(0);
    return 0;
}

/// The loader libvips would use for these bytes (e.g. "VipsForeignLoadJpegBuffer"), or NULL.
static inline const char *qv_loader(const void *data, size_t size) { return vips_foreign_find_load_buffer(data, size); }

/// An image over `data` (not copied: it must outlive the image and everything made from it).
static inline VipsImage *qv_load(const void *data, size_t size, int random) {
    return vips_image_new_from_buffer(data, size, "", "access", random ? VIPS_ACCESS_RANDOM : VIPS_ACCESS_SEQUENTIAL,
                                      "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
}

/// A copy whose metadata may be changed (the pixels are shared).
static inline VipsImage *qv_copy(VipsImage *in) {
    VipsImage *out = NULL;
    return vips_copy(in, &out, NULL) == 0 ? out : NULL;
}

/// Turned upright as its orientation tag says (the tag removed).
static inline VipsImage *qv_autorot(VipsImage *in) {
    VipsImage *out = NULL;
    return vips_autorot(in, &out, NULL) == 0 ? out : NULL;
}

/// A thumbnail at most `width` × `height`, made while loading (shrink-on-load), upright.
static inline VipsImage *qv_thumbnail(void *data, size_t size, int width, int height) {
    VipsImage *out = NULL;
    return vips_thumbnail_buffer(data, size, &out, width, "height", height, "size", VIPS_SIZE_DOWN,
                                 "option_string", "fail_on=truncated", NULL) == 0 ? out : NULL;
}

static inline int qv_int(VipsImage *image, const char *name, int *out) { return vips_image_get_int(image, name, out); }

/// format: 0 JPEG, 1 PNG, 2 WebP, 3 AVIF, 4 HEIC (the last two through libheif); strip: drop every
/// metadata block. The buffer is g_free'd by the caller.
static inline int qv_save(VipsImage *in, int format, int quality, int strip, void **buf, size_t *len) {
    switch (format) {
    case 0:
        if (vips_image_hasalpha(in)) {
            // JPEG has no alpha: flatten onto white (libvips' default would be black).
            double white = (in->BandFmt == VIPS_FORMAT_USHORT) ? 65535.0 : 255.0;
            VipsArrayDouble *background = vips_array_double_new(&white, 1);
            VipsImage *flat = NULL;
            int r = vips_flatten(in, &flat, "background", background, NULL);
            vips_area_unref(VIPS_AREA(background));
            if (r) return r;
            r = vips_jpegsave_buffer(flat, buf, len, "Q", quality, "strip", strip, NULL);
            g_object_unref(flat);
            return r;
        }
        return vips_jpegsave_buffer(in, buf, len, "Q", quality, "strip", strip, NULL);
    case 1: return vips_pngsave_buffer(in, buf, len, "strip", strip, NULL);
    case 3: return vips_heifsave_buffer(in, buf, len, "Q", quality, "strip", strip, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, NULL);
    case 4: return vips_heifsave_buffer(in, buf, len, "Q", quality, "strip", strip, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_HEVC, NULL);
    default: return vips_webpsave_buffer(in, buf, len, "Q", quality, "strip", strip, NULL);
    }
}

static inline void qv_unref(VipsImage *image) { g_object_unref(image); }
static inline void qv_free(void *p) { g_free(p); }
static inline void qv_strfreev(gchar **v) { g_strfreev(v); }

/// A width × height sRGB image with alpha, fully transparent (black under it).
static inline VipsImage *qv_transparent(int width, int height) {
    VipsImage *black = NULL, *cast = NULL;
    if (vips_black(&black, width, height, "bands", 4, NULL)) return NULL;
    int r = vips_cast(black, &cast, VIPS_FORMAT_UCHAR, NULL);
    g_object_unref(black);
    if (r) return NULL;
    cast->Type = VIPS_INTERPRETATION_sRGB;
    return cast;
}

/// The mean of every band of every pixel.
static inline int qv_average(VipsImage *in, double *out) { return vips_avg(in, out, NULL); }

/// A width × height sRGB test image: a gradient, or (noise) Gaussian noise — as costly to code
/// as a photograph.
static inline VipsImage *qv_gradient(int width, int height, int noise) {
    VipsImage *xyz = NULL, *cast = NULL, *joined = NULL;
    if (noise ? vips_gaussnoise(&xyz, width, height, "mean", 128.0, "sigma", 40.0, NULL) : vips_xyz(&xyz, width, height, NULL)) return NULL;
    VipsImage *bands[3];
    if (vips_cast(xyz, &cast, VIPS_FORMAT_UCHAR, NULL)) { g_object_unref(xyz); return NULL; }
    bands[0] = cast; bands[1] = cast; bands[2] = cast;
    int r = vips_bandjoin(bands, &joined, 2, NULL);
    g_object_unref(xyz); g_object_unref(cast);
    if (r) return NULL;
    VipsImage *three = NULL;
    VipsImage *parts[2] = { joined, joined };
    r = vips_bandjoin(parts, &three, 2, NULL);
    g_object_unref(joined);
    if (r) return NULL;
    VipsImage *rgb = NULL;
    r = vips_extract_band(three, &rgb, 0, "n", 3, NULL);
    g_object_unref(three);
    if (r) return NULL;
    rgb->Type = VIPS_INTERPRETATION_sRGB;
    return rgb;
}
