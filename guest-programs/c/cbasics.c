/* libc basics as musl-gcc -static builds them: printf of integers, doubles and long
 * doubles, strtod, libm (double and long double), malloc churn, qsort, strings,
 * setjmp/longjmp. Output must match a native run byte for byte. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void integers(void) {
    printf("ints: %d %i %u %x %X %o %ld %lld %zu %jd\n", -42, 17, 4000000000u, 0xbeef, 0xcafe,
           0755, -1234567890123L, (long long)INT64_MIN, sizeof(long double), INTMAX_MAX);
    printf("widths: [%8d] [%-8d] [%8.3d] [%+d] [% d] [%#x] [%#o] [%.0d]\n", 42, 42, 7, 5, 5,
           255, 8, 0);
    printf("%" PRIu64 " %" PRIx64 " %" PRId32 "\n", UINT64_MAX, UINT64_C(0xfedcba9876543210),
           INT32_MIN);
}

static void doubles(void) {
    double v[] = {0.0, -0.0, 1.0, 0.1, 1.0 / 3.0, 2.0 / 3.0, 1e300, 1e-300, 5e-324,
                  DBL_MAX, DBL_MIN, 123456789.125, -2.5, 0.5, 1.5, 2.5, M_PI, INFINITY,
                  -INFINITY, NAN};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        printf("d[%zu]: %f %.3e %g %.17g %a\n", i, v[i], v[i], v[i], v[i], v[i]);
    long double l[] = {1.0L / 3.0L, 0.1L, LDBL_MAX, LDBL_MIN, LDBL_EPSILON, 1e4000L,
                       -1234.5678L, 3.14159265358979323846264338327950288L};
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
        printf("ld[%zu]: %Lf %.5Le %Lg %.21Lg %La\n", i, l[i], l[i], l[i], l[i], l[i]);
    const char *s[] = {"0.1", "1e23", "2.2250738585072011e-308", "0x1.fffffffffffffp1023",
                       "123456789012345678901234567890", "-1e-400", "inf", "nan", "1e400"};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        char *end;
        double d = strtod(s[i], &end);
        long double ld = strtold(s[i], 0);
        printf("strtod(%s) = %.17g (%a), strtold %.21Lg, rest '%s'\n", s[i], d, d, ld, end);
    }
    float f = 16777217.0f;
    printf("float: %.9g %a\n", f, (double)f);
}

static void libm(void) {
    /* Functions musl computes in software (SSE2 arithmetic) or with exact x87
     * instructions (sqrtl, fabsl, rintl...). */
    double x[] = {0.5, 1.0, 2.0, 10.0, -3.25, 1e-8, 700.0};
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        double a = x[i];
        printf("m(%g): sin %.17g cos %.17g tan %.17g exp %.17g log %.17g sqrt %.17g\n", a,
               sin(a), cos(a), tan(a), exp(a), log(fabs(a)), sqrt(fabs(a)));
        printf("   pow %.17g atan2 %.17g fmod %.17g cbrt %.17g hypot %.17g lgamma %.17g\n",
               pow(a, 1.5), atan2(a, 3.0), fmod(a, 0.75), cbrt(a), hypot(a, 4.0),
               lgamma(fabs(a)));
        int e;
        double m = frexp(a, &e);
        printf("   frexp %.17g,%d ldexp %.17g floor %g ceil %g round %g trunc %g\n", m, e,
               ldexp(m, e + 3), floor(a), ceil(a), round(a), trunc(a));
        long double la = a;
        printf("   sqrtl %.21Lg fabsl %.21Lg rintl %.21Lg fmodl %.21Lg\n", sqrtl(fabsl(la)),
               fabsl(la), rintl(la * 3.3L), fmodl(la, 0.7L));
    }
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void sorting(void) {
    enum { N = 5000 };
    int *a = malloc(N * sizeof *a);
    double *d = malloc(N * sizeof *d);
    for (int i = 0; i < N; i++) {
        a[i] = (int)(next() % 1000003) - 500000;
        d[i] = (double)(int64_t)next() / 3.0;
    }
    qsort(a, N, sizeof *a, cmp_int);
    qsort(d, N, sizeof *d, cmp_dbl);
    uint64_t h = 0;
    int sorted = 1;
    for (int i = 0; i < N; i++) {
        h = h * 31 + (uint32_t)a[i];
        if (i && (a[i - 1] > a[i] || d[i - 1] > d[i]))
            sorted = 0;
    }
    printf("qsort: sorted %d, hash %016" PRIx64 ", min %d max %d, dmin %.6e dmax %.6e\n", sorted,
           h, a[0], a[N - 1], d[0], d[N - 1]);
    free(a);
    free(d);
}

static void churn(void) {
    enum { SLOTS = 256, ROUNDS = 6000 };
    static unsigned char *p[SLOTS];
    static size_t len[SLOTS];
    uint64_t sum = 0;
    for (int r = 0; r < ROUNDS; r++) {
        int i = next() % SLOTS;
        if (p[i] && next() % 3 == 0) {
            for (size_t k = 0; k < len[i]; k += 97)
                sum += p[i][k] ^ (unsigned char)(i + k);
            free(p[i]);
            p[i] = 0;
        } else {
            size_t n = next() % 8 == 0 ? next() % 200000 : next() % 2000;
            unsigned char *q = p[i] ? realloc(p[i], n + 1) : malloc(n + 1);
            if (!q) {
                printf("malloc failed at round %d\n", r);
                exit(1);
            }
            for (size_t k = 0; k <= n; k += 97)
                q[k] = (unsigned char)(i + k);
            p[i] = q;
            len[i] = n + 1;
        }
    }
    for (int i = 0; i < SLOTS; i++)
        free(p[i]);
    printf("malloc churn: %d rounds, checksum %" PRIu64 "\n", ROUNDS, sum);
}

static void strings(void) {
    char buf[256];
    strcpy(buf, "the quick brown fox");
    strcat(buf, " jumps over the lazy dog");
    char *tok, *save, copy[256];
    strcpy(copy, buf);
    printf("strlen %zu, strchr %s, strrchr %s, strstr %s\n", strlen(buf), strchr(buf, 'q'),
           strrchr(buf, 'o'), strstr(buf, "lazy"));
    int n = 0;
    for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(0, " ", &save))
        n++;
    memmove(buf + 4, buf, 10);
    printf("tokens %d, after memmove '%s', cmp %d %d, spn %zu cspn %zu\n", n, buf,
           strcmp("abc", "abd") < 0, memcmp("xyz", "xyz", 3), strspn("aabbc", "ab"),
           strcspn("hello", "l"));
    char big[100000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    big[77777] = 'y';
    printf("big: strlen %zu, strchr at %td, memchr at %td\n", strlen(big),
           strchr(big, 'y') - big, (char *)memchr(big, 'y', sizeof big) - big);
    snprintf(buf, sizeof buf, "%s|%10.4f|%-5s|%c", "fmt", 3.14159, "ab", 'z');
    printf("snprintf: %s (%d)\n", buf, snprintf(0, 0, "%0100d", 1));
    printf("strtol %ld strtoul %lu atoi %d\n", strtol("-0x7fff", 0, 16),
           strtoul("777", 0, 8), atoi("  -123xyz"));
}

static jmp_buf jb;
static int depth(int n) {
    if (n < 0)
        return 0;
    if (n == 0)
        longjmp(jb, 42);
    return depth(n - 1) + 1;
}

int main(void) {
    integers();
    doubles();
    libm();
    sorting();
    churn();
    strings();
    int r = setjmp(jb);
    if (r == 0)
        depth(100);
    printf("longjmp returned %d\n", r);
    return 0;
}
