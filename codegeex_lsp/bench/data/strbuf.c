/* A growable string buffer with printf-style appends and line splitting. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} strbuf;

int strbuf_init(strbuf *sb, size_t cap) {
    sb->data = malloc(cap ? cap : 16);
    if (sb->data == NULL) {
        return -1;
    }
    sb->data[0] = '\0';
    sb->len = 0;
    sb->cap = cap ? cap : 16;
    return 0;
}

static int strbuf_reserve(strbuf *sb, size_t extra) {
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap) {
        return 0;
    }
    size_t cap = sb->cap * 2;
    while (cap < need) {
        cap *= 2;
    }
    char *data = realloc(sb->data, cap);
    if (data == NULL) {
        return -1;
    }
    sb->data = data;
    sb->cap = cap;
    return 0;
}

int strbuf_append(strbuf *sb, const char *text, size_t n) {
    if (strbuf_reserve(sb, n) != 0) {
        return -1;
    }
    memcpy(sb->data + sb->len, text, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
    return 0;
}

int strbuf_printf(strbuf *sb, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (n < 0 || strbuf_reserve(sb, (size_t)n) != 0) {
        return -1;
    }
    va_start(args, fmt);
    vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, args);
    va_end(args);
    sb->len += (size_t)n;
    return n;
}

size_t strbuf_count_lines(const strbuf *sb) {
    size_t lines = 0;
    for (size_t i = 0; i < sb->len; i++) {
        if (sb->data[i] == '\n') {
            lines++;
        }
    }
    return sb->len > 0 && sb->data[sb->len - 1] != '\n' ? lines + 1 : lines;
}

void strbuf_free(strbuf *sb) {
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}
