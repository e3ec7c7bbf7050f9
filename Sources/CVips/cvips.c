// libvips through dlopen (include/cvips.h). The headers give the types, constants and each
// function's prototype; every call goes through a pointer resolved by dlsym, so the executable
// refers to no libvips or GLib symbol and is not linked with them.
#include "cvips.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <vips/vips.h>

#define QV_FUNCTIONS(X) \
    X(vips_init) X(vips_version) X(vips_block_untrusted_set) X(vips_cache_set_max) X(vips_error_buffer_copy) \
    X(vips_image_new_from_buffer) X(vips_copy) X(vips_autorot) X(vips_thumbnail_buffer) \
    X(vips_image_get_width) X(vips_image_get_height) X(vips_image_get_interpretation) X(vips_image_get_int) \
    X(vips_image_get_as_string) X(vips_image_get_fields) X(vips_image_remove) X(vips_image_hasalpha) \
    X(vips_array_double_new) X(vips_area_unref) X(vips_flatten) X(vips_jpegsave_buffer) X(vips_pngsave_buffer) \
    X(vips_heifsave_buffer) X(vips_webpsave_buffer) X(vips_black) X(vips_cast) X(vips_avg) X(vips_gaussnoise) \
    X(vips_xyz) X(vips_bandjoin) X(vips_extract_band) \
    X(g_log_set_handler) X(g_object_unref) X(g_free) X(g_strfreev)

#define QV_POINTER(name) static __typeof__(name) *p_##name;
QV_FUNCTIONS(QV_POINTER)

static pthread_once_t once = PTHREAD_ONCE_INIT;
/// 0 once started, -1 before or when it failed; read after pthread_once, which orders it.
static int started = -1;
static char failure[256] = "libvips was not loaded";

/// libvips' warnings (e.g. "heifload: ignoring nclx profile") go nowhere: a failure comes back
/// through its error buffer, and a daemon's standard error is not a place for a library's chatter.
static void quiet(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data) {}

static void start(void) {
    // The ABI the headers describe is the library's soname (VIPS_INIT checks the same).
    char soname[64];
    snprintf(soname, sizeof soname, "libvips.so.%d", VIPS_LIBRARY_CURRENT - VIPS_LIBRARY_AGE);
    void *library = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(failure, sizeof failure, "cannot load %s: %s", soname, dlerror());
        return;
    }
#define QV_RESOLVE(name) \
    if (!(p_##name = (__typeof__(name) *)dlsym(library, #name))) { \
        snprintf(failure, sizeof failure, "%s has no %s", soname, #name); \
        return; \
    }
    QV_FUNCTIONS(QV_RESOLVE)
    if (p_vips_version(3) - p_vips_version(5) != VIPS_LIBRARY_CURRENT - VIPS_LIBRARY_AGE) {
        snprintf(failure, sizeof failure, "%s has ABI %d, not %d", soname, p_vips_version(3) - p_vips_version(5),
                 VIPS_LIBRARY_CURRENT - VIPS_LIBRARY_AGE);
        return;
    }
    if (p_vips_init("qstore")) {
        snprintf(failure, sizeof failure, "vips_init failed");
        return;
    }
    p_g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO, quiet, NULL);
    // Only the loaders of the formats QpiC admits; no cache holding operations (and metadata) of past requests.
    p_vips_block_untrusted_set(TRUE);
    p_vips_cache_set_max(0);
    started = 0;
}

int qv_init(void) {
    pthread_once(&once, start);
    return started;
}

const char *qv_init_error(void) { return started == 0 ? NULL : failure; }

#define IMG(x) ((VipsImage *)(x))

char *qv_error_copy(void) { return p_vips_error_buffer_copy(); }

QVImage *qv_load(const void *data, size_t size, int random) {
    return (QVImage *)p_vips_image_new_from_buffer(data, size, "", "access", random ? VIPS_ACCESS_RANDOM : VIPS_ACCESS_SEQUENTIAL,
                                                   "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
}

QVImage *qv_copy(QVImage *in) {
    VipsImage *out = NULL;
    return p_vips_copy(IMG(in), &out, NULL) == 0 ? (QVImage *)out : NULL;
}

QVImage *qv_autorot(QVImage *in) {
    VipsImage *out = NULL;
    return p_vips_autorot(IMG(in), &out, NULL) == 0 ? (QVImage *)out : NULL;
}

QVImage *qv_thumbnail(void *data, size_t size, int width, int height) {
    VipsImage *out = NULL;
    return p_vips_thumbnail_buffer(data, size, &out, width, "height", height, "size", VIPS_SIZE_DOWN,
                                   "option_string", "fail_on=truncated", NULL) == 0 ? (QVImage *)out : NULL;
}

int qv_width(QVImage *image) { return p_vips_image_get_width(IMG(image)); }
int qv_height(QVImage *image) { return p_vips_image_get_height(IMG(image)); }

int qv_interpretation(QVImage *image) {
    switch (p_vips_image_get_interpretation(IMG(image))) {
    case VIPS_INTERPRETATION_sRGB: return 0;
    case VIPS_INTERPRETATION_B_W: return 1;
    case VIPS_INTERPRETATION_CMYK: return 2;
    case VIPS_INTERPRETATION_RGB16: return 3;
    case VIPS_INTERPRETATION_GREY16: return 4;
    case VIPS_INTERPRETATION_scRGB: return 5;
    case VIPS_INTERPRETATION_LAB: return 6;
    default: return -1;
    }
}

int qv_int(QVImage *image, const char *name, int *out) { return p_vips_image_get_int(IMG(image), name, out); }
int qv_string(QVImage *image, const char *name, char **out) { return p_vips_image_get_as_string(IMG(image), name, out); }
char **qv_fields(QVImage *image) { return p_vips_image_get_fields(IMG(image)); }
void qv_remove(QVImage *image, const char *name) { (void)p_vips_image_remove(IMG(image), name); }

int qv_save(QVImage *image, int format, int quality, int strip, void **buf, size_t *len) {
    VipsImage *in = IMG(image);
    switch (format) {
    case 0:
        if (p_vips_image_hasalpha(in)) {
            // JPEG has no alpha: flatten onto white (libvips' default would be black).
            double white = (in->BandFmt == VIPS_FORMAT_USHORT) ? 65535.0 : 255.0;
            VipsArrayDouble *background = p_vips_array_double_new(&white, 1);
            VipsImage *flat = NULL;
            int r = p_vips_flatten(in, &flat, "background", background, NULL);
            p_vips_area_unref(VIPS_AREA(background));
            if (r) return r;
            r = p_vips_jpegsave_buffer(flat, buf, len, "Q", quality, "strip", strip, NULL);
            p_g_object_unref(flat);
            return r;
        }
        return p_vips_jpegsave_buffer(in, buf, len, "Q", quality, "strip", strip, NULL);
    case 1: return p_vips_pngsave_buffer(in, buf, len, "strip", strip, NULL);
    case 3: return p_vips_heifsave_buffer(in, buf, len, "Q", quality, "strip", strip, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, NULL);
    case 4: return p_vips_heifsave_buffer(in, buf, len, "Q", quality, "strip", strip, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_HEVC, NULL);
    default: return p_vips_webpsave_buffer(in, buf, len, "Q", quality, "strip", strip, NULL);
    }
}

void qv_unref(QVImage *image) { p_g_object_unref(image); }
void qv_free(void *p) { p_g_free(p); }
void qv_strfreev(char **v) { p_g_strfreev(v); }

QVImage *qv_transparent(int width, int height) {
    VipsImage *black = NULL, *cast = NULL;
    if (p_vips_black(&black, width, height, "bands", 4, NULL)) return NULL;
    int r = p_vips_cast(black, &cast, VIPS_FORMAT_UCHAR, NULL);
    p_g_object_unref(black);
    if (r) return NULL;
    cast->Type = VIPS_INTERPRETATION_sRGB;
    return (QVImage *)cast;
}

int qv_average(QVImage *in, double *out) { return p_vips_avg(IMG(in), out, NULL); }

QVImage *qv_gradient(int width, int height, int noise) {
    VipsImage *xyz = NULL, *cast = NULL, *joined = NULL;
    if (noise ? p_vips_gaussnoise(&xyz, width, height, "mean", 128.0, "sigma", 40.0, NULL) : p_vips_xyz(&xyz, width, height, NULL)) return NULL;
    VipsImage *bands[3];
    if (p_vips_cast(xyz, &cast, VIPS_FORMAT_UCHAR, NULL)) { p_g_object_unref(xyz); return NULL; }
    bands[0] = cast; bands[1] = cast; bands[2] = cast;
    int r = p_vips_bandjoin(bands, &joined, 2, NULL);
    p_g_object_unref(xyz); p_g_object_unref(cast);
    if (r) return NULL;
    VipsImage *three = NULL;
    VipsImage *parts[2] = { joined, joined };
    r = p_vips_bandjoin(parts, &three, 2, NULL);
    p_g_object_unref(joined);
    if (r) return NULL;
    VipsImage *rgb = NULL;
    r = p_vips_extract_band(three, &rgb, 0, "n", 3, NULL);
    p_g_object_unref(three);
    if (r) return NULL;
    rgb->Type = VIPS_INTERPRETATION_sRGB;
    return (QVImage *)rgb;
}
