#include <stdio.h>
#include "util.h"

int add(int a, int b);

struct point {
    int x;
    int y;
};

typedef struct {
    int w;
} size_t2;

static char *dup(const char *s) {
    return 0;
}

int add(int a, int b) {
    return a + b;
}

int main(void) {
    printf("%d\n", add(1, 2));
    return 0;
}
