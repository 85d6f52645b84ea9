/* Restartable sequences (rseq), registered by hand (musl does not register one, unlike
 * glibc): registration and its error answers, cpu_id kept current, a critical section
 * interrupted by a signal resuming at its abort handler, a corrupt descriptor killing the
 * thread with SIGSEGV, and unregistration. Output must match a native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_rseq
#define SYS_rseq 334
#endif
#define RSEQ_SIG 0x53053053
#define RSEQ_FLAG_UNREGISTER 1

struct rseq_area {
    uint32_t cpu_id_start;
    uint32_t cpu_id;
    uint64_t rseq_cs;
    uint32_t flags;
} __attribute__((aligned(32)));

struct rseq_cs_desc {
    uint32_t version, flags;
    uint64_t start_ip, post_commit_offset, abort_ip;
} __attribute__((aligned(32)));

static struct rseq_area rs = {.cpu_id = (uint32_t)-1};

static long rseq_call(void *area, uint32_t len, int flags, uint32_t sig) {
    return syscall(SYS_rseq, area, len, flags, sig);
}

static void report(const char *what, long r) {
    int e = errno;
    printf("%s: %ld %s\n", what, r, r < 0 ? strerror(e) : "ok");
}

static volatile sig_atomic_t handled;
static void on_signal(int s) {
    (void)s;
    handled++;
}

/* Spin inside a critical section until the kernel moves us to the abort handler; 1 if
 * that happened. */
static int spin_in_critical_section(void) {
    __asm__ goto volatile(
        ".pushsection __rseq_cs_area, \"aw\"\n"
        ".balign 32\n"
        "3:\n"
        ".long 0, 0\n"
        ".quad 1f, (2f - 1f), 4f\n"
        ".popsection\n"
        "leaq 3b(%%rip), %%rax\n"
        "movq %%rax, %[cs]\n"
        "1:\n"
        "jmp 1b\n"
        "2:\n"
        ".pushsection __rseq_abort_area, \"ax\"\n"
        ".long 0x53053053\n"
        "4:\n"
        "jmp %l[aborted]\n"
        ".popsection\n"
        :
        : [cs] "m"(rs.rseq_cs)
        : "rax", "memory"
        : aborted);
    return 0;
aborted:
    return 1;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    report("register", rseq_call(&rs, sizeof rs, 0, RSEQ_SIG));
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    printf("cpu_id valid: %d, cpu_id_start valid: %d\n", rs.cpu_id < (uint32_t)ncpu,
           rs.cpu_id_start < (uint32_t)ncpu);
    report("register again", rseq_call(&rs, sizeof rs, 0, RSEQ_SIG));
    report("register again, other signature", rseq_call(&rs, sizeof rs, 0, RSEQ_SIG + 1));
    static struct rseq_area other;
    report("register another area", rseq_call(&other, sizeof other, 0, RSEQ_SIG));
    report("bad flags", rseq_call(&rs, sizeof rs, 2, RSEQ_SIG));

    /* A signal interrupts the spinning section (or, natively, a preemption does): the
     * handler runs, and the section resumes at its abort handler. */
    signal(SIGALRM, on_signal);
    struct itimerval it = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    int aborted = spin_in_critical_section();
    /* A native run may be preempted (another CPU's work) before the timer fires: that
     * aborts the section too, and the signal comes after. */
    while (!handled)
        ;
    printf("section aborted: %d, handler ran: %d, rseq_cs cleared: %d\n", aborted,
           handled == 1, rs.rseq_cs == 0);

    /* A descriptor with an unknown version: the next signal delivery kills the thread. */
    pid_t c = fork();
    if (c == 0) {
        static struct rseq_cs_desc bad = {.version = 1};
        rs.rseq_cs = (uint64_t)(uintptr_t)&bad;
        signal(SIGUSR1, on_signal);
        raise(SIGUSR1);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    printf("corrupt descriptor: killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : 0);

    report("unregister, wrong signature",
           rseq_call(&rs, sizeof rs, RSEQ_FLAG_UNREGISTER, RSEQ_SIG + 1));
    report("unregister", rseq_call(&rs, sizeof rs, RSEQ_FLAG_UNREGISTER, RSEQ_SIG));
    printf("cpu_id after unregister: %d\n", (int)rs.cpu_id);
    report("unregister again", rseq_call(&rs, sizeof rs, RSEQ_FLAG_UNREGISTER, RSEQ_SIG));
    static char misaligned[64] __attribute__((aligned(32)));
    report("misaligned", rseq_call(misaligned + 8, 32, 0, RSEQ_SIG));
    report("short", rseq_call(&rs, 16, 0, RSEQ_SIG));
    return 0;
}
