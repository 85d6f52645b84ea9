/* POSIX threads as musl-gcc -static builds them: creation and join with results, a mutex
 * and a condition variable, thread-local storage, getpid vs gettid, a signal to one
 * thread (pthread_kill), a detached thread, futex timeouts, and a thread calling exit()
 * that ends the whole process. `cthreads main-exits` has main call pthread_exit while
 * another thread runs on. Output must match a native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { N = 4, ROUNDS = 20000 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long counter;
static int ready;
static __thread int tls_value;
static pid_t main_pid;

static void *worker(void *arg) {
    long id = (long)arg;
    tls_value = (int)id * 100;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    while (!ready)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    pid_t tid = (pid_t)syscall(SYS_gettid);
    long same_pid = getpid() == main_pid;
    long other_tid = tid != main_pid;
    return (void *)(id * 1000 + tls_value / 100 + same_pid * 10 + other_tid * 20);
}

static volatile sig_atomic_t usr1_in;
static void on_usr1(int s) {
    (void)s;
    usr1_in = (int)syscall(SYS_gettid) != main_pid ? 2 : 1;
}

static void *waiter(void *arg) {
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    while (!usr1_in)
        sched_yield();
    return 0;
}

static volatile int detached_done;
static void *detached(void *arg) {
    (void)arg;
    detached_done = 1;
    return 0;
}

static void *exits_process(void *arg) {
    (void)arg;
    fflush(stdout);
    exit(42);
}

static void *outlives_main(void *arg) {
    (void)arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, 0);
    printf("the last thread prints after main's pthread_exit\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    main_pid = getpid();
    if (argc > 1 && strcmp(argv[1], "main-exits") == 0) {
        pthread_t t;
        pthread_create(&t, 0, outlives_main, 0);
        pthread_exit(0);
    }
    printf("main: gettid == getpid: %d\n", (pid_t)syscall(SYS_gettid) == main_pid);
    pthread_t th[N];
    for (long i = 0; i < N; i++)
        if (pthread_create(&th[i], 0, worker, (void *)i) != 0)
            return 1;
    /* Let the workers finish counting and wait on the condition variable, so that the
     * broadcast hands sleeping waiters to the mutex (musl: FUTEX_REQUEUE). */
    struct timespec pause = {0, 50 * 1000 * 1000};
    nanosleep(&pause, 0);
    pthread_mutex_lock(&lock);
    ready = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < N; i++) {
        void *r;
        pthread_join(th[i], &r);
        printf("thread %d returned %ld\n", i, (long)r);
    }
    printf("counter %ld (want %d), main's tls %d\n", counter, N * ROUNDS, tls_value);

    /* pthread_kill: the handler runs in the target thread. */
    signal(SIGUSR1, on_usr1);
    pthread_t w;
    pthread_create(&w, 0, waiter, 0);
    pthread_kill(w, SIGUSR1);
    pthread_join(w, 0);
    printf("SIGUSR1 ran in %s\n", usr1_in == 2 ? "the other thread" : "main");

    /* A detached thread. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t d;
    pthread_create(&d, &attr, detached, 0);
    while (!detached_done)
        sched_yield();
    printf("detached thread ran\n");

    /* A timed wait that times out. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 5 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&lock);
    int rc = pthread_cond_timedwait(&cond, &lock, &until);
    pthread_mutex_unlock(&lock);
    printf("timedwait: %s\n", rc == ETIMEDOUT ? "ETIMEDOUT" : strerror(rc));

    /* exit() in a thread ends the process with its status. */
    pthread_t e;
    pthread_create(&e, 0, exits_process, 0);
    pthread_join(e, 0);
    printf("not reached\n");
    return 0;
}
