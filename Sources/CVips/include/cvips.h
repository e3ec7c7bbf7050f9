#ifndef QSTORE_CVIPS_H
#define QSTORE_CVIPS_H
// libvips for QpiC, loaded on first use (dlopen), so a daemon that serves no media maps none of
// libvips' ~90 libraries (~15 MiB of RSS) and does not pay their start-up. Its calls take
// NULL-terminated optional arguments (C varargs), which Swift cannot call: these functions name
// the options QpiC uses. Images are opaque here; every function but qv_init needs qv_init() == 0.
#include <stddef.h>

typedef struct QVImage QVImage;

/// Loads libvips (libvips.so.<ABI> of the headers built against) and starts it, once per
/// process: 0, or -1 with the reason in qv_init_error() (call it after qv_init).
int qv_init(void);
const char *qv_init_error(void);

/// libvips' error buffer, cleared as it is taken (free with qv_free), or NULL.
char *qv_error_copy(void);

/// An image over `data` (not copied: it must outlive the image and everything made from it).
QVImage *qv_load(const void *data, size_t size, int random);
/// A copy whose metadata may be changed (the pixels are shared).
QVImage *qv_copy(QVImage *in);
/// Turned upright as its orientation tag says (the tag removed).
QVImage *qv_autorot(QVImage *in);
/// A thumbnail at most `width` × `height`, made while loading (shrink-on-load), upright.
QVImage *qv_thumbnail(void *data, size_t size, int width, int height);

int qv_width(QVImage *image);
int qv_height(QVImage *image);
/// 0 sRGB, 1 B_W, 2 CMYK, 3 RGB16, 4 GREY16, 5 scRGB, 6 LAB, -1 another.
int qv_interpretation(QVImage *image);
int qv_int(QVImage *image, const char *name, int *out);
/// A field as text (free with qv_free); 0 when it exists.
int qv_string(QVImage *image, const char *name, char **out);
/// Every metadata field's name, NULL-terminated (free with qv_strfreev).
char **qv_fields(QVImage *image);
void qv_remove(QVImage *image, const char *name);

/// format: 0 JPEG, 1 PNG, 2 WebP, 3 AVIF, 4 HEIC (the last two through libheif); strip: drop every
/// metadata block. The buffer is freed with qv_free.
int qv_save(QVImage *in, int format, int quality, int strip, void **buf, size_t *len);

/// A width × height sRGB image with alpha, fully transparent (black under it).
QVImage *qv_transparent(int width, int height);
/// A width × height sRGB test image: a gradient, or (noise) Gaussian noise.
QVImage *qv_gradient(int width, int height, int noise);
/// The mean of every band of every pixel.
int qv_average(QVImage *in, double *out);

void qv_unref(QVImage *image);
void qv_free(void *p);
void qv_strfreev(char **v);

#endif
