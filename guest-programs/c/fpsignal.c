/* FPU and SSE state across signal handlers, SIGFPE codes from x87 and SSE exceptions,
 * and the signal frame's fpstate as Linux lays it out. Output must match a native run. */
#define _GNU_SOURCE
#include <fenv.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile double handler_result;
static volatile int handler_ran;
static sigjmp_buf jb;
static volatile int fpe_code;

static void usr1(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    (void)si;
    /* The handler starts with the initial FPU state: MXCSR 0x1f80, FCW 0x37f. */
    uint32_t mxcsr;
    uint16_t fcw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fcw));
    printf("handler: sig %d mxcsr %#x fcw %#x\n", sig, mxcsr, fcw);
    /* The interrupted code's state is in the frame. */
    struct _fpstate *fp = uc->uc_mcontext.fpregs;
    printf("handler: fpstate %s, aligned %d, saved mxcsr %#x fcw %#x\n",
           fp ? "present" : "NULL", fp ? (int)(((uintptr_t)fp) % 64 == 0) : -1,
           fp ? fp->mxcsr : 0, fp ? fp->cwd : 0);
    const uint32_t *sw = (const uint32_t *)((const char *)fp + 464);
    /* The area's size depends on the CPU's features (576 bytes for x87 and SSE). */
    printf("handler: magic1 %#x, extended size = xstate size + 4: %d, at least 576: %d, "
           "uc_flags %#lx\n",
           sw[0], sw[1] == sw[4] + 4, sw[4] >= 576, uc->uc_flags);
    printf("handler: magic2 %#x\n", *(const uint32_t *)((const char *)fp + sw[4]));
    /* Clobber everything the interrupted code holds. */
    fesetround(FE_UPWARD);
    __asm__ volatile("xorps %%xmm0, %%xmm0\n\txorps %%xmm1, %%xmm1" ::: "xmm0", "xmm1");
    volatile double x = 1.0;
    handler_result = x / 3.0;
    handler_ran = 1;
}

static void fpe(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    fpe_code = si->si_code;
    siglongjmp(jb, 1);
}

/* A handler that edits the interrupted code's MXCSR in the frame: sigreturn loads it. */
static volatile uint32_t new_mxcsr;
static void usr2(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    ucontext_t *uc = ctx;
    uc->uc_mcontext.fpregs->mxcsr = new_mxcsr;
}

static const char *code_name(int c) {
    switch (c) {
    case FPE_INTDIV: return "FPE_INTDIV";
    case FPE_FLTDIV: return "FPE_FLTDIV";
    case FPE_FLTOVF: return "FPE_FLTOVF";
    case FPE_FLTUND: return "FPE_FLTUND";
    case FPE_FLTRES: return "FPE_FLTRES";
    case FPE_FLTINV: return "FPE_FLTINV";
    default: return "?";
    }
}

/* Unmask one SSE exception, provoke it, report the SIGFPE code. */
static void sse_trap(const char *what, uint32_t unmask, double a, double b, int op) {
    struct sigaction sa = {0};
    sa.sa_sigaction = fpe;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGFPE, &sa, 0);
    fpe_code = 0;
    if (sigsetjmp(jb, 1) == 0) {
        uint32_t m = 0x1f80 & ~unmask;
        __asm__ volatile("ldmxcsr %0" ::"m"(m));
        volatile double va = a, vb = b, r;
        if (op == 0)
            r = va / vb;
        else if (op == 1)
            r = va * vb;
        else
            r = va + vb;
        (void)r;
        printf("%s: no trap\n", what);
    } else {
        printf("%s: SIGFPE %s\n", what, code_name(fpe_code));
    }
    uint32_t m = 0x1f80;
    __asm__ volatile("ldmxcsr %0" ::"m"(m));
}

/* The same for the x87: unmask in the control word, then FWAIT raises #MF. */
static void x87_trap(const char *what, uint16_t unmask) {
    struct sigaction sa = {0};
    sa.sa_sigaction = fpe;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGFPE, &sa, 0);
    fpe_code = 0;
    if (sigsetjmp(jb, 1) == 0) {
        uint16_t cw = 0x37f & ~unmask;
        volatile long double z = 0.0L, one = 1.0L, r;
        __asm__ volatile("fnclex\n\tfldcw %0" ::"m"(cw));
        r = one / z;
        __asm__ volatile("fwait");
        (void)r;
        printf("%s: no trap\n", what);
    } else {
        printf("%s: SIGFPE %s\n", what, code_name(fpe_code));
    }
    uint16_t cw = 0x37f;
    __asm__ volatile("fnclex\n\tfldcw %0" ::"m"(cw));
}

int main(int argc, char **argv) {
    /* QEMU's TCG does not raise #XM for unmasked SSE exceptions: its cross-check skips
     * them. */
    int simd_traps = !(argc > 1 && strcmp(argv[1], "no-simd-traps") == 0);
    struct sigaction sa = {0};
    sa.sa_sigaction = usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, 0);
    /* State the handler must not disturb: a rounding mode, xmm values, an x87 value. */
    fesetround(FE_DOWNWARD);
    volatile double third_down = 1.0 / 3.0;
    volatile long double ld = 2.0L;
    /* xmm15 across a signal delivered on the way out of a system call (kill). */
    double keep = 1234.5, back = 0;
    long nr = SYS_kill, pid = getpid(), sig = SIGUSR1;
    __asm__ volatile("movsd %[in], %%xmm15\n\t"
                     "syscall\n\t"
                     "movsd %%xmm15, %[out]"
                     : [out] "=m"(back), "+a"(nr)
                     : [in] "m"(keep), "D"(pid), "S"(sig)
                     : "rcx", "r11", "xmm15", "memory");
    volatile double after = 1.0 / 3.0;
    printf("handler ran %d, its 1/3 rounded up: %.17g\n", handler_ran, handler_result);
    printf("after: rounding %s, 1/3 %.17g (before %.17g), xmm15 %.1f, sqrtl(2) %.18Lg\n",
           fegetround() == FE_DOWNWARD ? "down" : "changed", after, third_down, back,
           __builtin_sqrtl(ld));
    fesetround(FE_TONEAREST);

    if (simd_traps) {
        sse_trap("sse divide by zero", 1 << 9, 1.0, 0.0, 0);
        sse_trap("sse invalid", 1 << 7, 0.0, 0.0, 0);
        sse_trap("sse overflow", 1 << 10, 1e308, 1e308, 1);
        sse_trap("sse underflow", 1 << 11, 1e-308, 1e-308, 1);
        sse_trap("sse inexact", 1 << 12, 1.0, 1e-30, 2);
        sse_trap("sse masked", 0, 1.0, 0.0, 0);
    }
    x87_trap("x87 divide by zero", 1 << 2);
    x87_trap("x87 masked", 0);
    struct sigaction sb = {0};
    sb.sa_sigaction = fpe;
    sb.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGFPE, &sb, 0);
    if (sigsetjmp(jb, 1) == 0) {
        int q = 1, d = 0;
        __asm__ volatile("cltd\n\tidivl %[d]" : "+a"(q) : [d] "r"(d) : "rdx");
        printf("integer divide: no trap\n");
    } else {
        printf("integer divide: SIGFPE %s\n", code_name(fpe_code));
    }

    /* The frame's MXCSR is loaded by sigreturn: round upward after the handler. */
    struct sigaction s2 = {0};
    s2.sa_sigaction = usr2;
    s2.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &s2, 0);
    new_mxcsr = 0x1f80 | FE_UPWARD << 3;
    raise(SIGUSR2);
    printf("after a handler set MXCSR: rounding %s\n",
           fegetround() == FE_UPWARD ? "upward" : "unchanged");
    fesetround(FE_TONEAREST);
    /* A reserved MXCSR bit in the frame: sigreturn fails, the process gets SIGSEGV. */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        new_mxcsr = 0x1f80 | 1u << 20;
        raise(SIGUSR2);
        printf("child: sigreturn accepted a reserved MXCSR bit\n");
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status))
        printf("child with a bad frame MXCSR: killed by signal %d\n", WTERMSIG(status));
    else
        printf("child with a bad frame MXCSR: exit %d\n", WEXITSTATUS(status));
    return 0;
}
