/* The process and thread machinery below pthreads, as musl-gcc -static builds it:
 * clone3 (a process with SIGCHLD, one with no exit signal reaped with __WALL, argument
 * checks, CLONE_CLEAR_SIGHAND), legacy clone with CLONE_PARENT, /proc/self/task and the
 * Tgid/Pid/Threads lines of /proc/PID/status, a robust process-shared mutex whose owner
 * dies holding it (EOWNERDEAD through the kernel's robust-list walk), execve from a
 * thread other than main (the process keeps its PID, the other threads are gone), and
 * vfork and CLONE_VM children writing the parent's memory, CPU time accounting, waitid,
 * sigwaitinfo and sigqueue, POSIX timers, and the wall clock. Everything printed is the same natively: no raw PIDs or times.
 *
 * `cclone exec-child PID` is the image the exec test runs. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef __WALL
#define __WALL 0x40000000
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define CLONE_CLEAR_SIGHAND_ 0x100000000ULL

/* `struct clone_args` of <linux/sched.h> (musl's headers do not carry the kernel's). */
struct clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

/* clone3 without a new stack: the child continues here as fork's child would. */
static long clone3_raw(struct clone_args *a, size_t size) {
    return syscall(SYS_clone3, a, size);
}

/* A line of /proc/PID/status ("Tgid:", "Threads:" ...) as a number, -1 if absent. */
static long status_field(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0) {
            v = strtol(line + n, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* A call's result and errno, evaluated in that order. */
static void report(const char *what, long r) {
    int e = errno;
    printf("%s: %ld %s\n", what, r, r < 0 ? strerror(e) : "ok");
}

static int count_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_clone3(void) {
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.exit_signal = SIGCHLD;
    long pid = clone3_raw(&a, sizeof a);
    if (pid == 0)
        _exit(7);
    int st = 0;
    long w = waitpid((pid_t)pid, &st, 0);
    printf("clone3 child: reaped=%d exited=%d status=%d\n", w == pid, WIFEXITED(st),
           WEXITSTATUS(st));

    /* No exit signal: a "clone" child, invisible to a plain wait, reaped with __WALL. */
    memset(&a, 0, sizeof a);
    pid = clone3_raw(&a, sizeof a);
    if (pid == 0)
        _exit(3);
    report("plain wait for a clone child", waitpid((pid_t)pid, &st, 0));
    w = waitpid((pid_t)pid, &st, __WALL);
    printf("__WALL wait: reaped=%d status=%d\n", w == pid, WEXITSTATUS(st));

    /* Argument checks. */
    report("size 32", clone3_raw(&a, 32));
    unsigned char big[128];
    memset(big, 0, sizeof big);
    memcpy(big, &a, sizeof a);
    big[100] = 1;
    report("non-zero tail", clone3_raw((struct clone_args *)big, sizeof big));
    memset(&a, 0, sizeof a);
    a.flags = CLONE_THREAD;
    report("thread without sighand", clone3_raw(&a, sizeof a));
    memset(&a, 0, sizeof a);
    a.exit_signal = 65;
    report("exit signal 65", clone3_raw(&a, sizeof a));
    memset(&a, 0, sizeof a);
    a.stack_size = 4096;
    report("stack size without stack", clone3_raw(&a, sizeof a));
    memset(&a, 0, sizeof a);
    a.flags = 0x20000; /* CLONE_NEWNS */
    a.exit_signal = SIGCHLD;
    long r = clone3_raw(&a, sizeof a);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    /* Root may create a mount namespace natively; this kernel has none (EINVAL). */
    printf("new mount namespace: %s\n", r >= 0 || errno == EINVAL ? "as expected" : strerror(errno));

    /* CLONE_CLEAR_SIGHAND: caught signals are back to SIG_DFL, ignored stay ignored. */
    signal(SIGUSR1, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = (void (*)(int))test_clone3; /* never delivered */
    sigaction(SIGUSR2, &sa, NULL);
    memset(&a, 0, sizeof a);
    a.flags = CLONE_CLEAR_SIGHAND_;
    a.exit_signal = SIGCHLD;
    pid = clone3_raw(&a, sizeof a);
    if (pid == 0) {
        struct sigaction o1, o2;
        sigaction(SIGUSR1, NULL, &o1);
        sigaction(SIGUSR2, NULL, &o2);
        _exit((o1.sa_handler == SIG_IGN) * 10 + (o2.sa_handler == SIG_DFL));
    }
    waitpid((pid_t)pid, &st, 0);
    printf("CLONE_CLEAR_SIGHAND: ignored kept=%d caught reset=%d\n", WEXITSTATUS(st) / 10,
           WEXITSTATUS(st) % 10);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
}

/* CLONE_PARENT: the grandchild is the caller's sibling, so the caller cannot wait for it
 * but its parent (this process) can. */
static void test_clone_parent(void) {
    pid_t mid = fork();
    if (mid == 0) {
        long g = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
        if (g == 0)
            _exit(9);
        errno = 0;
        int st;
        long w = waitpid((pid_t)g, &st, 0);
        _exit(w == -1 && errno == ECHILD ? 1 : 2);
    }
    int st, mid_status = -1, sibling_status = -1;
    pid_t w;
    while ((w = waitpid(-1, &st, 0)) > 0) {
        if (w == mid)
            mid_status = WEXITSTATUS(st);
        else
            sibling_status = WEXITSTATUS(st);
    }
    printf("CLONE_PARENT: the caller's wait gave ECHILD=%d, the common parent reaped the "
           "sibling with status %d\n",
           mid_status == 1, sibling_status);
}

static pthread_barrier_t barrier;
static void *parked(void *arg) {
    (void)arg;
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    return NULL;
}

static void test_proc_task(void) {
    enum { T = 3 };
    pthread_t th[T];
    pthread_barrier_init(&barrier, NULL, T + 1);
    for (int i = 0; i < T; i++)
        pthread_create(&th[i], NULL, parked, NULL);
    pthread_barrier_wait(&barrier);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", getpid());
    printf("/proc/PID/task entries: %d\n", count_dir(path));
    printf("/proc/self/task entries: %d\n", count_dir("/proc/self/task"));
    printf("status Threads: %ld\n", status_field("/proc/self/status", "Threads:"));
    printf("status Tgid is getpid: %d\n",
           status_field("/proc/self/status", "Tgid:") == getpid());
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", (long)syscall(SYS_gettid));
    printf("task status Pid is gettid: %d\n",
           status_field(path, "Pid:") == (long)syscall(SYS_gettid));
    printf("thread-self is this thread: %d\n",
           status_field("/proc/thread-self/status", "Pid:") == (long)syscall(SYS_gettid));
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    printf("after join, Threads: %ld\n", status_field("/proc/self/status", "Threads:"));
}

/* A robust, process-shared mutex in shared memory: the child locks it and exits without
 * unlocking (with _exit, so no C library clean-up runs: only the kernel's walk of the
 * robust list can mark it). */
static void test_robust(void) {
    pthread_mutex_t *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &at);
    pid_t c = fork();
    if (c == 0) {
        pthread_mutex_lock(m);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    int r = pthread_mutex_lock(m);
    printf("robust lock after the owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    if (r == EOWNERDEAD)
        pthread_mutex_consistent(m);
    pthread_mutex_unlock(m);
    r = pthread_mutex_lock(m);
    printf("lock again: %d\n", r);
    pthread_mutex_unlock(m);
}

static char self_pid[32];
static void *exec_from_thread(void *arg) {
    char *const argv[] = {(char *)arg, "exec-child", self_pid, NULL};
    execv("/proc/self/exe", argv);
    perror("execv");
    _exit(99);
}

static void *sleeper(void *arg) {
    for (;;)
        pause();
    return arg;
}

static void test_exec_from_thread(const char *argv0) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        snprintf(self_pid, sizeof self_pid, "%d", getpid());
        pthread_t a, b;
        pthread_create(&a, NULL, sleeper, NULL);
        pthread_create(&b, NULL, exec_from_thread, (void *)argv0);
        for (;;)
            pause();
    }
    int st;
    waitpid(c, &st, 0);
    printf("exec from a thread: exited=%d status=%d\n", WIFEXITED(st), WEXITSTATUS(st));
}

static int exec_child(const char *pid) {
    int same = atol(pid) == getpid();
    int tid_is_pid = syscall(SYS_gettid) == getpid();
    long threads = status_field("/proc/self/status", "Threads:");
    printf("  new image: same pid=%d tid==pid=%d threads=%ld tasks=%d\n", same, tid_is_pid,
           threads, count_dir("/proc/self/task"));
    return 5;
}

/* vfork and CLONE_VM: the child runs in the parent's memory, so its writes are seen. */
static volatile int shared_word = 1;
static char clone_stack[64 << 10] __attribute__((aligned(16)));
static int clone_vm_child(void *arg) {
    shared_word = (int)(long)arg;
    return 4;
}

extern char **environ;
static void test_shared_memory(void) {
    pid_t c = vfork();
    if (c == 0) {
        shared_word = 42;
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("vfork child wrote the parent's memory: %d\n", shared_word);
    int st = 0;
    c = clone(clone_vm_child, clone_stack + sizeof clone_stack, CLONE_VM | SIGCHLD, (void *)77L);
    waitpid(c, &st, 0);
    printf("CLONE_VM child wrote the parent's memory: %d, status %d\n", shared_word,
           WEXITSTATUS(st));
    pid_t p;
    char *argv[] = {"nope", NULL};
    int r = posix_spawn(&p, "/nonexistent/prog", NULL, NULL, argv, environ);
    printf("posix_spawn of a missing program: %s\n", strerror(r));
    /* A vfork child that execs: the parent resumes with its memory untouched. */
    c = vfork();
    if (c == 0) {
        execl("/proc/self/exe", "cclone", "exec-child", "0", (char *)NULL);
        _exit(98);
    }
    waitpid(c, &st, 0);
    printf("vfork+exec child status %d, parent word still %d\n", WEXITSTATUS(st), shared_word);
}

/* CPU time: burn 30 ms of CPU time as clock() counts it, in this process and in a child. */
static void burn(void) {
    clock_t start = clock();
    volatile unsigned long x = 0;
    while (clock() - start < CLOCKS_PER_SEC * 3 / 100)
        for (int i = 0; i < 100000; i++)
            x += (unsigned long)i;
}

static double tv(struct timeval t) {
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

static volatile sig_atomic_t vt_fired, prof_fired;
static void on_vtalrm(int s) {
    (void)s;
    vt_fired++;
}
static void on_prof(int s) {
    (void)s;
    prof_fired++;
}

/* ITIMER_VIRTUAL and ITIMER_PROF count CPU time: each fires once 20 ms of it are used. */
static void test_cpu_itimers(void) {
    signal(SIGVTALRM, on_vtalrm);
    signal(SIGPROF, on_prof);
    struct itimerval v = {{0, 0}, {0, 20000}};
    setitimer(ITIMER_VIRTUAL, &v, NULL);
    setitimer(ITIMER_PROF, &v, NULL);
    struct itimerval cur;
    getitimer(ITIMER_VIRTUAL, &cur);
    printf("ITIMER_VIRTUAL armed: %d\n", cur.it_value.tv_usec > 0 || cur.it_value.tv_sec > 0);
    clock_t start = clock();
    volatile unsigned long x = 0;
    while ((!vt_fired || !prof_fired) && clock() - start < 2 * CLOCKS_PER_SEC)
        for (int i = 0; i < 10000; i++)
            x += (unsigned long)i;
    printf("ITIMER_VIRTUAL fired %d, ITIMER_PROF fired %d\n", vt_fired, prof_fired);
    getitimer(ITIMER_PROF, &cur);
    printf("one-shot disarmed: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);
    signal(SIGVTALRM, SIG_DFL);
    signal(SIGPROF, SIG_DFL);
}

static void test_cputime(void) {
    test_cpu_itimers();
    burn();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("own user+system time >= 30 ms: %d\n", tv(ru.ru_utime) + tv(ru.ru_stime) >= 0.03);
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    printf("thread CPU clock >= 30 ms: %d\n", ts.tv_sec > 0 || ts.tv_nsec >= 30000000);
    long utime = -1;
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        if (fgets(buf, sizeof buf, f)) {
            char *p = strrchr(buf, ')');
            /* Fields after the comm: state is field 3, utime field 14. */
            for (int field = 3; p && field <= 14; field++) {
                p = strchr(p + 1, ' ');
                if (field == 14 && p)
                    utime = strtol(p + 1, NULL, 10);
            }
        }
        fclose(f);
    }
    printf("/proc/self/stat utime >= 2 ticks: %d\n", utime >= 2);
    pid_t c = fork();
    if (c == 0) {
        burn();
        _exit(0);
    }
    int st;
    struct rusage cru;
    wait4(c, &st, 0, &cru);
    printf("child's rusage from wait4 >= 30 ms: %d\n", tv(cru.ru_utime) + tv(cru.ru_stime) >= 0.03);
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("children's rusage >= the child's: %d\n",
           tv(ru.ru_utime) + tv(ru.ru_stime) >= tv(cru.ru_utime) + tv(cru.ru_stime) - 1e-6);
    struct tms t;
    times(&t);
    printf("times: own >= 2 ticks %d, children >= 2 ticks %d\n", t.tms_utime + t.tms_stime >= 2,
           t.tms_cutime + t.tms_cstime >= 2);
}

/* waitid: choosing the events, WNOWAIT, WNOHANG, stops, continues and kills. */
static void print_si(const char *what, int r, siginfo_t *si, pid_t expect) {
    int e = errno;
    if (r < 0) {
        printf("%s: %s\n", what, strerror(e));
        return;
    }
    printf("%s: signo %d code %d pid-ok %d status %d\n", what, si->si_signo, si->si_code,
           si->si_pid == expect, si->si_status);
}

static void test_waitid(void) {
    siginfo_t si;
    pid_t c = fork();
    if (c == 0)
        _exit(7);
    memset(&si, 0xff, sizeof si);
    print_si("waitid WNOWAIT", waitid(P_PID, c, &si, WEXITED | WNOWAIT), &si, c);
    memset(&si, 0xff, sizeof si);
    print_si("waitid reaps", waitid(P_PID, c, &si, WEXITED), &si, c);
    print_si("waitid again", waitid(P_PID, c, &si, WEXITED), &si, c);
    int go[2];
    if (pipe(go) != 0)
        return;
    c = fork();
    if (c == 0) {
        char b;
        close(go[1]);
        if (read(go[0], &b, 1) < 0)
            _exit(1);
        for (;;)
            pause();
    }
    close(go[0]);
    memset(&si, 0xff, sizeof si);
    print_si("WNOHANG, running", waitid(P_PID, c, &si, WEXITED | WNOHANG), &si, 0);
    kill(c, SIGSTOP);
    print_si("stopped", waitid(P_PID, c, &si, WSTOPPED), &si, c);
    kill(c, SIGCONT);
    print_si("continued", waitid(P_PID, c, &si, WCONTINUED), &si, c);
    kill(c, SIGKILL);
    print_si("killed", waitid(P_ALL, 0, &si, WEXITED), &si, c);
    close(go[1]);
    print_si("no options", waitid(P_ALL, 0, &si, 0), &si, 0);
}

/* Waiting for signals without handlers (sigwaitinfo, sigtimedwait) and sigqueue. */
static void test_sigwait(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    siginfo_t si;
    int r = sigwaitinfo(&set, &si);
    printf("sigwaitinfo: %d code %d\n", r == SIGUSR1, si.si_code);
    union sigval v = {.sival_int = 1234};
    sigqueue(getpid(), SIGUSR2, v);
    r = sigwaitinfo(&set, &si);
    printf("sigqueue: %d code %d value %d pid-ok %d\n", r == SIGUSR2, si.si_code,
           si.si_value.sival_int, si.si_pid == getpid());
    struct timespec ts = {0, 10000000};
    errno = 0;
    r = sigtimedwait(&set, &si, &ts);
    int e = errno;
    printf("sigtimedwait with nothing pending: %d %s\n", r, strerror(e));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* POSIX timers: a one-shot timer read with sigwaitinfo, a periodic one overrunning while
 * its signal is blocked, absolute REALTIME times, SIGEV_THREAD (musl's helper thread over
 * SIGEV_THREAD_ID), and the error answers. */
static volatile int thread_fired;
static void on_timer_thread(union sigval v) {
    thread_fired = v.sival_int;
}

static void test_posix_timers(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    ev.sigev_value.sival_int = 99;
    timer_t t1;
    int r = timer_create(CLOCK_MONOTONIC, &ev, &t1);
    struct itimerspec its = {{0, 0}, {0, 20000000}};
    timer_settime(t1, 0, &its, NULL);
    struct itimerspec cur;
    timer_gettime(t1, &cur);
    printf("timer_create %d, armed: %d\n", r, cur.it_value.tv_nsec > 0);
    siginfo_t si;
    r = sigwaitinfo(&set, &si);
    printf("one-shot fired: %d code %d value %d\n", r == SIGUSR1, si.si_code,
           si.si_value.sival_int);
    timer_gettime(t1, &cur);
    printf("after firing: %ld %ld\n", (long)cur.it_value.tv_sec, (long)cur.it_value.tv_nsec);

    /* Every 5 ms for 60 ms with the signal blocked: one signal, the rest overruns. */
    struct itimerspec per = {{0, 5000000}, {0, 5000000}};
    timer_settime(t1, 0, &per, NULL);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += 60000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_nsec -= 1000000000;
        until.tv_sec++;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ;
    r = sigwaitinfo(&set, &si);
    int over = timer_getoverrun(t1);
    printf("periodic: one signal %d, overrun >= 5: %d, si_overrun == getoverrun: %d\n",
           r == SIGUSR1, over >= 5, si.si_overrun == over);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(t1, 0, &off, &cur);
    printf("disarm returned the old interval: %ld\n", cur.it_interval.tv_nsec);

    /* An absolute REALTIME expiry 20 ms ahead. */
    timer_t t2;
    timer_create(CLOCK_REALTIME, &ev, &t2);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec abs = {{0, 0}, now};
    abs.it_value.tv_nsec += 20000000;
    if (abs.it_value.tv_nsec >= 1000000000) {
        abs.it_value.tv_nsec -= 1000000000;
        abs.it_value.tv_sec++;
    }
    timer_settime(t2, TIMER_ABSTIME, &abs, NULL);
    struct timespec limit = {2, 0};
    r = sigtimedwait(&set, &si, &limit);
    printf("absolute realtime timer fired: %d\n", r == SIGUSR1);

    /* SIGEV_THREAD. */
    timer_t t3;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_timer_thread;
    ev.sigev_value.sival_int = 7;
    r = timer_create(CLOCK_MONOTONIC, &ev, &t3);
    struct itimerspec once = {{0, 0}, {0, 10000000}};
    timer_settime(t3, 0, &once, NULL);
    for (int i = 0; i < 200 && !thread_fired; i++)
        usleep(5000);
    printf("SIGEV_THREAD: created %d, callback value %d\n", r, thread_fired);

    int d1 = timer_delete(t1);
    int d2 = timer_delete(t1);
    printf("delete: %d, again: %d\n", d1, d2 == -1 && errno == EINVAL);
    timer_delete(t2);
    timer_delete(t3);
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = 0;
    timer_t bad;
    errno = 0;
    r = timer_create(CLOCK_MONOTONIC, &ev, &bad);
    printf("signal 0: %d %s\n", r, strerror(errno));
    errno = 0;
    r = timer_create(12345, NULL, &bad);
    printf("bad clock: %d %s\n", r, strerror(errno));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static void test_clock(void) {
    struct timespec rt, mono;
    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    time_t t = time(NULL);
    /* 2021-01-01 */
    printf("realtime after 2021: %d\n", rt.tv_sec > 1609459200);
    printf("gettimeofday and time agree: %d %d\n", labs(tv.tv_sec - rt.tv_sec) <= 2,
           labs((long)t - rt.tv_sec) <= 2);
    struct timespec coarse;
    clock_gettime(CLOCK_REALTIME_COARSE, &coarse);
    printf("coarse realtime close: %d\n", labs(coarse.tv_sec - rt.tv_sec) <= 2);
    /* An absolute REALTIME sleep 20 ms ahead ends (not at a monotonic time decades away). */
    struct timespec until = rt;
    until.tv_nsec += 20000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_nsec -= 1000000000;
        until.tv_sec++;
    }
    int r = clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL);
    struct timespec after;
    clock_gettime(CLOCK_REALTIME, &after);
    int reached = after.tv_sec > until.tv_sec ||
                  (after.tv_sec == until.tv_sec && after.tv_nsec >= until.tv_nsec);
    printf("absolute realtime sleep: %d reached=%d\n", r, reached);
    (void)mono;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "exec-child") == 0)
        return exec_child(argv[2]);
    setvbuf(stdout, NULL, _IONBF, 0);
    test_clone3();
    test_clone_parent();
    test_proc_task();
    test_robust();
    test_exec_from_thread(argv[0]);
    test_shared_memory();
    test_cputime();
    test_waitid();
    test_sigwait();
    test_posix_timers();
    test_clock();
    return 0;
}
