/* In-kernel copies between files, as busybox (sendfile) and coreutils' cp
 * (copy_file_range) do them: whole files and ranges, with and without offsets, into a
 * pipe, and the error answers. Works in the current directory; output must match a
 * native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *what, long r) {
    int e = errno;
    printf("%s: %ld %s\n", what, r, r < 0 ? strerror(e) : "ok");
}

static long cfr(int in, loff_t *oin, int out, loff_t *oout, size_t len, unsigned flags) {
    return syscall(SYS_copy_file_range, in, oin, out, oout, len, flags);
}

static unsigned sum(const char *path) {
    int fd = open(path, O_RDONLY);
    unsigned char b[4096];
    unsigned s = 0;
    long n;
    while ((n = read(fd, b, sizeof b)) > 0)
        for (long i = 0; i < n; i++)
            s = s * 31 + b[i];
    close(fd);
    return s;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char dir[] = "ccopy.XXXXXX";
    if (!mkdtemp(dir) || chdir(dir) != 0)
        return 1;
    /* 300,000 bytes of a pattern: several chunks of the kernel's bounce buffer. */
    int src = open("src", O_RDWR | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 300000; i += 1000) {
        char blk[1000];
        for (int j = 0; j < 1000; j++)
            blk[j] = (char)('a' + (i / 1000 + j) % 26);
        if (write(src, blk, sizeof blk) != sizeof blk)
            return 2;
    }
    lseek(src, 0, SEEK_SET);

    /* sendfile from the file offset, then with an explicit offset. */
    int dst = open("dst1", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    report("sendfile whole", sendfile(dst, src, NULL, 1 << 20));
    printf("input offset after: %ld\n", (long)lseek(src, 0, SEEK_CUR));
    report("sendfile at end", sendfile(dst, src, NULL, 100));
    close(dst);
    printf("copy same: %d\n", sum("src") == sum("dst1"));
    off_t off = 1234;
    dst = open("dst2", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    report("sendfile at 1234", sendfile(dst, src, &off, 5000));
    printf("offset now %ld, file offset still %ld\n", (long)off, (long)lseek(src, 0, SEEK_CUR));
    close(dst);

    /* Into a pipe, read back. */
    int p[2];
    if (pipe(p) != 0)
        return 3;
    off = 26;
    report("sendfile into a pipe", sendfile(p[1], src, &off, 10));
    char got[16] = {0};
    report("read it", read(p[0], got, sizeof got - 1));
    printf("pipe got: %s\n", got);
    int app = open("dst3", O_WRONLY | O_CREAT | O_APPEND, 0644);
    report("sendfile to O_APPEND", sendfile(app, src, NULL, 10));
    report("sendfile from a write-only fd", sendfile(p[1], app, NULL, 10));
    off = 0;
    report("sendfile from a pipe with an offset", sendfile(app, p[0], &off, 10));

    /* copy_file_range. */
    int d4 = open("dst4", O_RDWR | O_CREAT | O_TRUNC, 0644);
    loff_t in = 0, out = 0;
    long total = 0, r;
    while ((r = cfr(src, &in, d4, &out, 1 << 20, 0)) > 0)
        total += r;
    printf("copy_file_range total %ld, in %ld, out %ld\n", total, (long)in, (long)out);
    printf("copy same: %d\n", sum("src") == sum("dst4"));
    lseek(src, 100, SEEK_SET);
    lseek(d4, 10, SEEK_SET);
    report("copy_file_range with file offsets", cfr(src, NULL, d4, NULL, 50, 0));
    printf("offsets after: %ld %ld\n", (long)lseek(src, 0, SEEK_CUR), (long)lseek(d4, 0, SEEK_CUR));
    in = 0;
    out = 10;
    report("overlapping range of one file", cfr(src, &in, src, &out, 100, 0));
    report("flags", cfr(src, NULL, d4, NULL, 10, 1));
    report("from a pipe", cfr(p[0], NULL, d4, NULL, 10, 0));
    in = 400000;
    report("past the end", cfr(src, &in, d4, NULL, 10, 0));
    report("to O_APPEND", cfr(src, NULL, app, NULL, 10, 0));
    report("into a directory", cfr(src, NULL, open(".", O_RDONLY), NULL, 10, 0));
    struct stat st;
    fstat(d4, &st);
    printf("dst4 size %ld\n", (long)st.st_size);
    unlink("src");
    unlink("dst1");
    unlink("dst2");
    unlink("dst3");
    unlink("dst4");
    if (chdir("..") != 0)
        return 4;
    rmdir(dir);
    return 0;
}
