/* Processes as musl-gcc -static programs use them: fork/exec/wait, pipes, signals with
 * handlers (sigaction, SA_SIGINFO, masks, alarm), SIGSEGV from a bad access with si_addr,
 * mmap (anonymous, shared across fork, a file in /tmp), mprotect. Output must match a
 * native run. `cproc child N` is the program exec'd by the parent. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, int status) {
    if (WIFEXITED(status))
        printf("%s: exit %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: signal %d\n", what, WTERMSIG(status));
    else
        printf("%s: status %#x\n", what, status);
}

static void fork_exec_wait(const char *self) {
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        execl("/proc/self/exe", self, "child", "7", (char *)0);
        _exit(127);
    }
    int st;
    pid_t w = waitpid(p, &st, 0);
    printf("waited for the right child: %d\n", w == p);
    report("exec'd child", st);
    /* Several children, reaped in any order; exit codes from the children. */
    int sum = 0;
    for (int i = 1; i <= 5; i++) {
        if (fork() == 0)
            _exit(i * 10);
    }
    for (int i = 0; i < 5; i++) {
        wait(&st);
        sum += WEXITSTATUS(st);
    }
    printf("five children, exit codes sum %d, then wait: %s\n", sum,
           wait(&st) < 0 && errno == ECHILD ? "ECHILD" : "?");
}

static void pipes(void) {
    int fd[2];
    if (pipe(fd) != 0) {
        perror("pipe");
        return;
    }
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        close(fd[0]);
        char buf[4096];
        for (int i = 0; i < 64; i++) {
            memset(buf, 'a' + i % 26, sizeof buf);
            if (write(fd[1], buf, sizeof buf) != sizeof buf)
                _exit(1);
        }
        _exit(0);
    }
    close(fd[1]);
    size_t total = 0;
    unsigned sum = 0;
    char buf[1000];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) {
        total += n;
        for (ssize_t i = 0; i < n; i++)
            sum += (unsigned char)buf[i];
    }
    close(fd[0]);
    int st;
    waitpid(p, &st, 0);
    printf("pipe: %zu bytes, sum %u\n", total, sum);
    report("writer", st);
    /* A write to a pipe without readers: SIGPIPE, or EPIPE when ignored. */
    pipe(fd);
    close(fd[0]);
    signal(SIGPIPE, SIG_IGN);
    ssize_t w = write(fd[1], "x", 1);
    printf("write without readers: %zd %s\n", w, errno == EPIPE ? "EPIPE" : "?");
    signal(SIGPIPE, SIG_DFL);
    close(fd[1]);
    /* popen-style: the child's stdout through a pipe and dup2. */
    pipe(fd);
    fflush(stdout);
    if ((p = fork()) == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        printf("through dup2\n");
        fflush(stdout);
        _exit(0);
    }
    close(fd[1]);
    n = read(fd[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fd[0]);
    waitpid(p, &st, 0);
    printf("child said: %s", buf);
}

static volatile sig_atomic_t got_usr1, got_alarm, got_chld;
static volatile void *fault_addr;
static volatile int fault_code;
static sigjmp_buf jb;

static void on_usr1(int s) { got_usr1 += s; }
static void on_alarm(int s) { got_alarm = s; }
static void on_chld(int s, siginfo_t *si, void *c) {
    (void)c;
    got_chld = s + si->si_status;
}
static void on_segv(int s, siginfo_t *si, void *c) {
    (void)s;
    (void)c;
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    siglongjmp(jb, 1);
}

static void signals(void) {
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR1);
    printf("SIGUSR1 handled: %d\n", got_usr1);
    /* Blocked, pending, then delivered when unblocked. */
    sigset_t set, old, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    raise(SIGUSR1);
    sigpending(&pend);
    printf("pending while blocked: %d, handled so far %d\n", sigismember(&pend, SIGUSR1),
           got_usr1);
    sigprocmask(SIG_SETMASK, &old, 0);
    printf("after unblocking: %d\n", got_usr1);
    signal(SIGALRM, on_alarm);
    alarm(1);
    pause();
    printf("alarm: %d\n", got_alarm);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGCHLD, &sa, 0);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0)
        _exit(3);
    int st;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR)
        ;
    printf("SIGCHLD: %d\n", got_chld);
    signal(SIGCHLD, SIG_DFL);
    /* A child killed by a signal. */
    fflush(stdout);
    if ((p = fork()) == 0) {
        raise(SIGTERM);
        _exit(0);
    }
    waitpid(p, &st, 0);
    report("child raising SIGTERM", st);
}

static void memory(void) {
    long page = sysconf(_SC_PAGESIZE);
    printf("page size %ld\n", page);
    unsigned char *a = mmap(0, 64 * page, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 64; i++)
        a[i * page] = (unsigned char)i;
    unsigned sum = 0;
    for (int i = 0; i < 64; i++)
        sum += a[i * page];
    printf("anonymous mapping: sum %u, untouched byte %d\n", sum, a[5]);
    /* Shared anonymous memory is shared with a child; private memory is copied. */
    int *shared = mmap(0, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *shared = 1;
    a[0] = 1;
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        *shared = 42;
        a[0] = 99;
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    printf("after the child wrote: shared %d, private %d\n", *shared, a[0]);
    /* A file mapped shared: stores reach the file. */
    const char *path = "/tmp/cproc-map";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ftruncate(fd, 2 * page);
    char *m = mmap(0, 2 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    strcpy(m + page, "written through the mapping");
    msync(m, 2 * page, MS_SYNC);
    char buf[64] = {0};
    pread(fd, buf, 27, page);
    printf("file: %s\n", buf);
    munmap(m, 2 * page);
    struct stat sb;
    fstat(fd, &sb);
    printf("file size %lld\n", (long long)sb.st_size);
    close(fd);
    unlink(path);
    /* mprotect: a read-only page faults on write, with the address. */
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    mprotect(a, page, PROT_READ);
    if (sigsetjmp(jb, 1) == 0) {
        a[10] = 1;
        printf("write to a read-only page: no fault\n");
    } else {
        printf("write to a read-only page: SIGSEGV at offset %td, %s\n",
               (unsigned char *)fault_addr - a, fault_code == SEGV_ACCERR ? "SEGV_ACCERR" : "?");
    }
    munmap(a, 64 * page);
    if (sigsetjmp(jb, 1) == 0) {
        a[3 * page] = 1;
        printf("write to unmapped memory: no fault\n");
    } else {
        printf("write to unmapped memory: SIGSEGV at offset %td, %s\n",
               (unsigned char *)fault_addr - a, fault_code == SEGV_MAPERR ? "SEGV_MAPERR" : "?");
    }
    signal(SIGSEGV, SIG_DFL);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        printf("child: argv[2] = %s\n", argv[2]);
        return atoi(argv[2]);
    }
    fork_exec_wait(argv[0]);
    pipes();
    signals();
    memory();
    return 0;
}
