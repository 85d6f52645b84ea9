//! The x86-64 system-call table by name (`arch/x86/entry/syscalls/syscall_64.tbl`, the
//! `common` and `64` entries of Linux 6.17; the x32 entries from 512 are not part of the 64-bit
//! ABI). [`NAMES`] gives every number its name, for the one-time "not implemented" log line
//! and for traces; [`nr`] names the numbers the dispatcher uses.

/// The number of table entries (`__NR_syscalls`).
pub const NR_SYSCALLS: usize = 470;

/// Name of each system call, by number (`""` for a hole in the table).
pub static NAMES: [&str; NR_SYSCALLS] = [
    "read",                    // 0
    "write",                   // 1
    "open",                    // 2
    "close",                   // 3
    "stat",                    // 4
    "fstat",                   // 5
    "lstat",                   // 6
    "poll",                    // 7
    "lseek",                   // 8
    "mmap",                    // 9
    "mprotect",                // 10
    "munmap",                  // 11
    "brk",                     // 12
    "rt_sigaction",            // 13
    "rt_sigprocmask",          // 14
    "rt_sigreturn",            // 15
    "ioctl",                   // 16
    "pread64",                 // 17
    "pwrite64",                // 18
    "readv",                   // 19
    "writev",                  // 20
    "access",                  // 21
    "pipe",                    // 22
    "select",                  // 23
    "sched_yield",             // 24
    "mremap",                  // 25
    "msync",                   // 26
    "mincore",                 // 27
    "madvise",                 // 28
    "shmget",                  // 29
    "shmat",                   // 30
    "shmctl",                  // 31
    "dup",                     // 32
    "dup2",                    // 33
    "pause",                   // 34
    "nanosleep",               // 35
    "getitimer",               // 36
    "alarm",                   // 37
    "setitimer",               // 38
    "getpid",                  // 39
    "sendfile",                // 40
    "socket",                  // 41
    "connect",                 // 42
    "accept",                  // 43
    "sendto",                  // 44
    "recvfrom",                // 45
    "sendmsg",                 // 46
    "recvmsg",                 // 47
    "shutdown",                // 48
    "bind",                    // 49
    "listen",                  // 50
    "getsockname",             // 51
    "getpeername",             // 52
    "socketpair",              // 53
    "setsockopt",              // 54
    "getsockopt",              // 55
    "clone",                   // 56
    "fork",                    // 57
    "vfork",                   // 58
    "execve",                  // 59
    "exit",                    // 60
    "wait4",                   // 61
    "kill",                    // 62
    "uname",                   // 63
    "semget",                  // 64
    "semop",                   // 65
    "semctl",                  // 66
    "shmdt",                   // 67
    "msgget",                  // 68
    "msgsnd",                  // 69
    "msgrcv",                  // 70
    "msgctl",                  // 71
    "fcntl",                   // 72
    "flock",                   // 73
    "fsync",                   // 74
    "fdatasync",               // 75
    "truncate",                // 76
    "ftruncate",               // 77
    "getdents",                // 78
    "getcwd",                  // 79
    "chdir",                   // 80
    "fchdir",                  // 81
    "rename",                  // 82
    "mkdir",                   // 83
    "rmdir",                   // 84
    "creat",                   // 85
    "link",                    // 86
    "unlink",                  // 87
    "symlink",                 // 88
    "readlink",                // 89
    "chmod",                   // 90
    "fchmod",                  // 91
    "chown",                   // 92
    "fchown",                  // 93
    "lchown",                  // 94
    "umask",                   // 95
    "gettimeofday",            // 96
    "getrlimit",               // 97
    "getrusage",               // 98
    "sysinfo",                 // 99
    "times",                   // 100
    "ptrace",                  // 101
    "getuid",                  // 102
    "syslog",                  // 103
    "getgid",                  // 104
    "setuid",                  // 105
    "setgid",                  // 106
    "geteuid",                 // 107
    "getegid",                 // 108
    "setpgid",                 // 109
    "getppid",                 // 110
    "getpgrp",                 // 111
    "setsid",                  // 112
    "setreuid",                // 113
    "setregid",                // 114
    "getgroups",               // 115
    "setgroups",               // 116
    "setresuid",               // 117
    "getresuid",               // 118
    "setresgid",               // 119
    "getresgid",               // 120
    "getpgid",                 // 121
    "setfsuid",                // 122
    "setfsgid",                // 123
    "getsid",                  // 124
    "capget",                  // 125
    "capset",                  // 126
    "rt_sigpending",           // 127
    "rt_sigtimedwait",         // 128
    "rt_sigqueueinfo",         // 129
    "rt_sigsuspend",           // 130
    "sigaltstack",             // 131
    "utime",                   // 132
    "mknod",                   // 133
    "uselib",                  // 134
    "personality",             // 135
    "ustat",                   // 136
    "statfs",                  // 137
    "fstatfs",                 // 138
    "sysfs",                   // 139
    "getpriority",             // 140
    "setpriority",             // 141
    "sched_setparam",          // 142
    "sched_getparam",          // 143
    "sched_setscheduler",      // 144
    "sched_getscheduler",      // 145
    "sched_get_priority_max",  // 146
    "sched_get_priority_min",  // 147
    "sched_rr_get_interval",   // 148
    "mlock",                   // 149
    "munlock",                 // 150
    "mlockall",                // 151
    "munlockall",              // 152
    "vhangup",                 // 153
    "modify_ldt",              // 154
    "pivot_root",              // 155
    "_sysctl",                 // 156
    "prctl",                   // 157
    "arch_prctl",              // 158
    "adjtimex",                // 159
    "setrlimit",               // 160
    "chroot",                  // 161
    "sync",                    // 162
    "acct",                    // 163
    "settimeofday",            // 164
    "mount",                   // 165
    "umount2",                 // 166
    "swapon",                  // 167
    "swapoff",                 // 168
    "reboot",                  // 169
    "sethostname",             // 170
    "setdomainname",           // 171
    "iopl",                    // 172
    "ioperm",                  // 173
    "create_module",           // 174
    "init_module",             // 175
    "delete_module",           // 176
    "get_kernel_syms",         // 177
    "query_module",            // 178
    "quotactl",                // 179
    "nfsservctl",              // 180
    "getpmsg",                 // 181
    "putpmsg",                 // 182
    "afs_syscall",             // 183
    "tuxcall",                 // 184
    "security",                // 185
    "gettid",                  // 186
    "readahead",               // 187
    "setxattr",                // 188
    "lsetxattr",               // 189
    "fsetxattr",               // 190
    "getxattr",                // 191
    "lgetxattr",               // 192
    "fgetxattr",               // 193
    "listxattr",               // 194
    "llistxattr",              // 195
    "flistxattr",              // 196
    "removexattr",             // 197
    "lremovexattr",            // 198
    "fremovexattr",            // 199
    "tkill",                   // 200
    "time",                    // 201
    "futex",                   // 202
    "sched_setaffinity",       // 203
    "sched_getaffinity",       // 204
    "set_thread_area",         // 205
    "io_setup",                // 206
    "io_destroy",              // 207
    "io_getevents",            // 208
    "io_submit",               // 209
    "io_cancel",               // 210
    "get_thread_area",         // 211
    "lookup_dcookie",          // 212
    "epoll_create",            // 213
    "epoll_ctl_old",           // 214
    "epoll_wait_old",          // 215
    "remap_file_pages",        // 216
    "getdents64",              // 217
    "set_tid_address",         // 218
    "restart_syscall",         // 219
    "semtimedop",              // 220
    "fadvise64",               // 221
    "timer_create",            // 222
    "timer_settime",           // 223
    "timer_gettime",           // 224
    "timer_getoverrun",        // 225
    "timer_delete",            // 226
    "clock_settime",           // 227
    "clock_gettime",           // 228
    "clock_getres",            // 229
    "clock_nanosleep",         // 230
    "exit_group",              // 231
    "epoll_wait",              // 232
    "epoll_ctl",               // 233
    "tgkill",                  // 234
    "utimes",                  // 235
    "vserver",                 // 236
    "mbind",                   // 237
    "set_mempolicy",           // 238
    "get_mempolicy",           // 239
    "mq_open",                 // 240
    "mq_unlink",               // 241
    "mq_timedsend",            // 242
    "mq_timedreceive",         // 243
    "mq_notify",               // 244
    "mq_getsetattr",           // 245
    "kexec_load",              // 246
    "waitid",                  // 247
    "add_key",                 // 248
    "request_key",             // 249
    "keyctl",                  // 250
    "ioprio_set",              // 251
    "ioprio_get",              // 252
    "inotify_init",            // 253
    "inotify_add_watch",       // 254
    "inotify_rm_watch",        // 255
    "migrate_pages",           // 256
    "openat",                  // 257
    "mkdirat",                 // 258
    "mknodat",                 // 259
    "fchownat",                // 260
    "futimesat",               // 261
    "newfstatat",              // 262
    "unlinkat",                // 263
    "renameat",                // 264
    "linkat",                  // 265
    "symlinkat",               // 266
    "readlinkat",              // 267
    "fchmodat",                // 268
    "faccessat",               // 269
    "pselect6",                // 270
    "ppoll",                   // 271
    "unshare",                 // 272
    "set_robust_list",         // 273
    "get_robust_list",         // 274
    "splice",                  // 275
    "tee",                     // 276
    "sync_file_range",         // 277
    "vmsplice",                // 278
    "move_pages",              // 279
    "utimensat",               // 280
    "epoll_pwait",             // 281
    "signalfd",                // 282
    "timerfd_create",          // 283
    "eventfd",                 // 284
    "fallocate",               // 285
    "timerfd_settime",         // 286
    "timerfd_gettime",         // 287
    "accept4",                 // 288
    "signalfd4",               // 289
    "eventfd2",                // 290
    "epoll_create1",           // 291
    "dup3",                    // 292
    "pipe2",                   // 293
    "inotify_init1",           // 294
    "preadv",                  // 295
    "pwritev",                 // 296
    "rt_tgsigqueueinfo",       // 297
    "perf_event_open",         // 298
    "recvmmsg",                // 299
    "fanotify_init",           // 300
    "fanotify_mark",           // 301
    "prlimit64",               // 302
    "name_to_handle_at",       // 303
    "open_by_handle_at",       // 304
    "clock_adjtime",           // 305
    "syncfs",                  // 306
    "sendmmsg",                // 307
    "setns",                   // 308
    "getcpu",                  // 309
    "process_vm_readv",        // 310
    "process_vm_writev",       // 311
    "kcmp",                    // 312
    "finit_module",            // 313
    "sched_setattr",           // 314
    "sched_getattr",           // 315
    "renameat2",               // 316
    "seccomp",                 // 317
    "getrandom",               // 318
    "memfd_create",            // 319
    "kexec_file_load",         // 320
    "bpf",                     // 321
    "execveat",                // 322
    "userfaultfd",             // 323
    "membarrier",              // 324
    "mlock2",                  // 325
    "copy_file_range",         // 326
    "preadv2",                 // 327
    "pwritev2",                // 328
    "pkey_mprotect",           // 329
    "pkey_alloc",              // 330
    "pkey_free",               // 331
    "statx",                   // 332
    "io_pgetevents",           // 333
    "rseq",                    // 334
    "uretprobe",               // 335
    "uprobe",                  // 336
    "",                        // 337
    "",                        // 338
    "",                        // 339
    "",                        // 340
    "",                        // 341
    "",                        // 342
    "",                        // 343
    "",                        // 344
    "",                        // 345
    "",                        // 346
    "",                        // 347
    "",                        // 348
    "",                        // 349
    "",                        // 350
    "",                        // 351
    "",                        // 352
    "",                        // 353
    "",                        // 354
    "",                        // 355
    "",                        // 356
    "",                        // 357
    "",                        // 358
    "",                        // 359
    "",                        // 360
    "",                        // 361
    "",                        // 362
    "",                        // 363
    "",                        // 364
    "",                        // 365
    "",                        // 366
    "",                        // 367
    "",                        // 368
    "",                        // 369
    "",                        // 370
    "",                        // 371
    "",                        // 372
    "",                        // 373
    "",                        // 374
    "",                        // 375
    "",                        // 376
    "",                        // 377
    "",                        // 378
    "",                        // 379
    "",                        // 380
    "",                        // 381
    "",                        // 382
    "",                        // 383
    "",                        // 384
    "",                        // 385
    "",                        // 386
    "",                        // 387
    "",                        // 388
    "",                        // 389
    "",                        // 390
    "",                        // 391
    "",                        // 392
    "",                        // 393
    "",                        // 394
    "",                        // 395
    "",                        // 396
    "",                        // 397
    "",                        // 398
    "",                        // 399
    "",                        // 400
    "",                        // 401
    "",                        // 402
    "",                        // 403
    "",                        // 404
    "",                        // 405
    "",                        // 406
    "",                        // 407
    "",                        // 408
    "",                        // 409
    "",                        // 410
    "",                        // 411
    "",                        // 412
    "",                        // 413
    "",                        // 414
    "",                        // 415
    "",                        // 416
    "",                        // 417
    "",                        // 418
    "",                        // 419
    "",                        // 420
    "",                        // 421
    "",                        // 422
    "",                        // 423
    "pidfd_send_signal",       // 424
    "io_uring_setup",          // 425
    "io_uring_enter",          // 426
    "io_uring_register",       // 427
    "open_tree",               // 428
    "move_mount",              // 429
    "fsopen",                  // 430
    "fsconfig",                // 431
    "fsmount",                 // 432
    "fspick",                  // 433
    "pidfd_open",              // 434
    "clone3",                  // 435
    "close_range",             // 436
    "openat2",                 // 437
    "pidfd_getfd",             // 438
    "faccessat2",              // 439
    "process_madvise",         // 440
    "epoll_pwait2",            // 441
    "mount_setattr",           // 442
    "quotactl_fd",             // 443
    "landlock_create_ruleset", // 444
    "landlock_add_rule",       // 445
    "landlock_restrict_self",  // 446
    "memfd_secret",            // 447
    "process_mrelease",        // 448
    "futex_waitv",             // 449
    "set_mempolicy_home_node", // 450
    "cachestat",               // 451
    "fchmodat2",               // 452
    "map_shadow_stack",        // 453
    "futex_wake",              // 454
    "futex_wait",              // 455
    "futex_requeue",           // 456
    "statmount",               // 457
    "listmount",               // 458
    "lsm_get_self_attr",       // 459
    "lsm_set_self_attr",       // 460
    "lsm_list_modules",        // 461
    "mseal",                   // 462
    "setxattrat",              // 463
    "getxattrat",              // 464
    "listxattrat",             // 465
    "removexattrat",           // 466
    "open_tree_attr",          // 467
    "file_getattr",            // 468
    "file_setattr",            // 469
];

/// The name of system call `nr`, if it has one.
pub fn name(nr: u64) -> Option<&'static str> {
    NAMES
        .get(usize::try_from(nr).ok()?)
        .copied()
        .filter(|n| !n.is_empty())
}

/// System-call numbers, named as in `asm/unistd_64.h` (upper case).
#[allow(dead_code)]
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const STAT: u64 = 4;
    pub const FSTAT: u64 = 5;
    pub const LSTAT: u64 = 6;
    pub const POLL: u64 = 7;
    pub const LSEEK: u64 = 8;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const RT_SIGRETURN: u64 = 15;
    pub const IOCTL: u64 = 16;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const ACCESS: u64 = 21;
    pub const PIPE: u64 = 22;
    pub const SELECT: u64 = 23;
    pub const SCHED_YIELD: u64 = 24;
    pub const MREMAP: u64 = 25;
    pub const MSYNC: u64 = 26;
    pub const MINCORE: u64 = 27;
    pub const MADVISE: u64 = 28;
    pub const SHMGET: u64 = 29;
    pub const SHMAT: u64 = 30;
    pub const SHMCTL: u64 = 31;
    pub const DUP: u64 = 32;
    pub const DUP2: u64 = 33;
    pub const PAUSE: u64 = 34;
    pub const NANOSLEEP: u64 = 35;
    pub const GETITIMER: u64 = 36;
    pub const ALARM: u64 = 37;
    pub const SETITIMER: u64 = 38;
    pub const GETPID: u64 = 39;
    pub const SENDFILE: u64 = 40;
    pub const SOCKET: u64 = 41;
    pub const CONNECT: u64 = 42;
    pub const ACCEPT: u64 = 43;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const RECVMSG: u64 = 47;
    pub const SHUTDOWN: u64 = 48;
    pub const BIND: u64 = 49;
    pub const LISTEN: u64 = 50;
    pub const GETSOCKNAME: u64 = 51;
    pub const GETPEERNAME: u64 = 52;
    pub const SOCKETPAIR: u64 = 53;
    pub const SETSOCKOPT: u64 = 54;
    pub const GETSOCKOPT: u64 = 55;
    pub const CLONE: u64 = 56;
    pub const FORK: u64 = 57;
    pub const VFORK: u64 = 58;
    pub const EXECVE: u64 = 59;
    pub const EXIT: u64 = 60;
    pub const WAIT4: u64 = 61;
    pub const KILL: u64 = 62;
    pub const UNAME: u64 = 63;
    pub const SEMGET: u64 = 64;
    pub const SEMOP: u64 = 65;
    pub const SEMCTL: u64 = 66;
    pub const SHMDT: u64 = 67;
    pub const MSGGET: u64 = 68;
    pub const MSGSND: u64 = 69;
    pub const MSGRCV: u64 = 70;
    pub const MSGCTL: u64 = 71;
    pub const FCNTL: u64 = 72;
    pub const FLOCK: u64 = 73;
    pub const FSYNC: u64 = 74;
    pub const FDATASYNC: u64 = 75;
    pub const TRUNCATE: u64 = 76;
    pub const FTRUNCATE: u64 = 77;
    pub const GETDENTS: u64 = 78;
    pub const GETCWD: u64 = 79;
    pub const CHDIR: u64 = 80;
    pub const FCHDIR: u64 = 81;
    pub const RENAME: u64 = 82;
    pub const MKDIR: u64 = 83;
    pub const RMDIR: u64 = 84;
    pub const CREAT: u64 = 85;
    pub const LINK: u64 = 86;
    pub const UNLINK: u64 = 87;
    pub const SYMLINK: u64 = 88;
    pub const READLINK: u64 = 89;
    pub const CHMOD: u64 = 90;
    pub const FCHMOD: u64 = 91;
    pub const CHOWN: u64 = 92;
    pub const FCHOWN: u64 = 93;
    pub const LCHOWN: u64 = 94;
    pub const UMASK: u64 = 95;
    pub const GETTIMEOFDAY: u64 = 96;
    pub const GETRLIMIT: u64 = 97;
    pub const GETRUSAGE: u64 = 98;
    pub const SYSINFO: u64 = 99;
    pub const TIMES: u64 = 100;
    pub const PTRACE: u64 = 101;
    pub const GETUID: u64 = 102;
    pub const SYSLOG: u64 = 103;
    pub const GETGID: u64 = 104;
    pub const SETUID: u64 = 105;
    pub const SETGID: u64 = 106;
    pub const GETEUID: u64 = 107;
    pub const GETEGID: u64 = 108;
    pub const SETPGID: u64 = 109;
    pub const GETPPID: u64 = 110;
    pub const GETPGRP: u64 = 111;
    pub const SETSID: u64 = 112;
    pub const SETREUID: u64 = 113;
    pub const SETREGID: u64 = 114;
    pub const GETGROUPS: u64 = 115;
    pub const SETGROUPS: u64 = 116;
    pub const SETRESUID: u64 = 117;
    pub const GETRESUID: u64 = 118;
    pub const SETRESGID: u64 = 119;
    pub const GETRESGID: u64 = 120;
    pub const GETPGID: u64 = 121;
    pub const SETFSUID: u64 = 122;
    pub const SETFSGID: u64 = 123;
    pub const GETSID: u64 = 124;
    pub const CAPGET: u64 = 125;
    pub const CAPSET: u64 = 126;
    pub const RT_SIGPENDING: u64 = 127;
    pub const RT_SIGTIMEDWAIT: u64 = 128;
    pub const RT_SIGQUEUEINFO: u64 = 129;
    pub const RT_SIGSUSPEND: u64 = 130;
    pub const SIGALTSTACK: u64 = 131;
    pub const UTIME: u64 = 132;
    pub const MKNOD: u64 = 133;
    pub const USELIB: u64 = 134;
    pub const PERSONALITY: u64 = 135;
    pub const USTAT: u64 = 136;
    pub const STATFS: u64 = 137;
    pub const FSTATFS: u64 = 138;
    pub const SYSFS: u64 = 139;
    pub const GETPRIORITY: u64 = 140;
    pub const SETPRIORITY: u64 = 141;
    pub const SCHED_SETPARAM: u64 = 142;
    pub const SCHED_GETPARAM: u64 = 143;
    pub const SCHED_SETSCHEDULER: u64 = 144;
    pub const SCHED_GETSCHEDULER: u64 = 145;
    pub const SCHED_GET_PRIORITY_MAX: u64 = 146;
    pub const SCHED_GET_PRIORITY_MIN: u64 = 147;
    pub const SCHED_RR_GET_INTERVAL: u64 = 148;
    pub const MLOCK: u64 = 149;
    pub const MUNLOCK: u64 = 150;
    pub const MLOCKALL: u64 = 151;
    pub const MUNLOCKALL: u64 = 152;
    pub const VHANGUP: u64 = 153;
    pub const MODIFY_LDT: u64 = 154;
    pub const PIVOT_ROOT: u64 = 155;
    pub const _SYSCTL: u64 = 156;
    pub const PRCTL: u64 = 157;
    pub const ARCH_PRCTL: u64 = 158;
    pub const ADJTIMEX: u64 = 159;
    pub const SETRLIMIT: u64 = 160;
    pub const CHROOT: u64 = 161;
    pub const SYNC: u64 = 162;
    pub const ACCT: u64 = 163;
    pub const SETTIMEOFDAY: u64 = 164;
    pub const MOUNT: u64 = 165;
    pub const UMOUNT2: u64 = 166;
    pub const SWAPON: u64 = 167;
    pub const SWAPOFF: u64 = 168;
    pub const REBOOT: u64 = 169;
    pub const SETHOSTNAME: u64 = 170;
    pub const SETDOMAINNAME: u64 = 171;
    pub const IOPL: u64 = 172;
    pub const IOPERM: u64 = 173;
    pub const CREATE_MODULE: u64 = 174;
    pub const INIT_MODULE: u64 = 175;
    pub const DELETE_MODULE: u64 = 176;
    pub const GET_KERNEL_SYMS: u64 = 177;
    pub const QUERY_MODULE: u64 = 178;
    pub const QUOTACTL: u64 = 179;
    pub const NFSSERVCTL: u64 = 180;
    pub const GETPMSG: u64 = 181;
    pub const PUTPMSG: u64 = 182;
    pub const AFS_SYSCALL: u64 = 183;
    pub const TUXCALL: u64 = 184;
    pub const SECURITY: u64 = 185;
    pub const GETTID: u64 = 186;
    pub const READAHEAD: u64 = 187;
    pub const SETXATTR: u64 = 188;
    pub const LSETXATTR: u64 = 189;
    pub const FSETXATTR: u64 = 190;
    pub const GETXATTR: u64 = 191;
    pub const LGETXATTR: u64 = 192;
    pub const FGETXATTR: u64 = 193;
    pub const LISTXATTR: u64 = 194;
    pub const LLISTXATTR: u64 = 195;
    pub const FLISTXATTR: u64 = 196;
    pub const REMOVEXATTR: u64 = 197;
    pub const LREMOVEXATTR: u64 = 198;
    pub const FREMOVEXATTR: u64 = 199;
    pub const TKILL: u64 = 200;
    pub const TIME: u64 = 201;
    pub const FUTEX: u64 = 202;
    pub const SCHED_SETAFFINITY: u64 = 203;
    pub const SCHED_GETAFFINITY: u64 = 204;
    pub const SET_THREAD_AREA: u64 = 205;
    pub const IO_SETUP: u64 = 206;
    pub const IO_DESTROY: u64 = 207;
    pub const IO_GETEVENTS: u64 = 208;
    pub const IO_SUBMIT: u64 = 209;
    pub const IO_CANCEL: u64 = 210;
    pub const GET_THREAD_AREA: u64 = 211;
    pub const LOOKUP_DCOOKIE: u64 = 212;
    pub const EPOLL_CREATE: u64 = 213;
    pub const EPOLL_CTL_OLD: u64 = 214;
    pub const EPOLL_WAIT_OLD: u64 = 215;
    pub const REMAP_FILE_PAGES: u64 = 216;
    pub const GETDENTS64: u64 = 217;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const RESTART_SYSCALL: u64 = 219;
    pub const SEMTIMEDOP: u64 = 220;
    pub const FADVISE64: u64 = 221;
    pub const TIMER_CREATE: u64 = 222;
    pub const TIMER_SETTIME: u64 = 223;
    pub const TIMER_GETTIME: u64 = 224;
    pub const TIMER_GETOVERRUN: u64 = 225;
    pub const TIMER_DELETE: u64 = 226;
    pub const CLOCK_SETTIME: u64 = 227;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const CLOCK_GETRES: u64 = 229;
    pub const CLOCK_NANOSLEEP: u64 = 230;
    pub const EXIT_GROUP: u64 = 231;
    pub const EPOLL_WAIT: u64 = 232;
    pub const EPOLL_CTL: u64 = 233;
    pub const TGKILL: u64 = 234;
    pub const UTIMES: u64 = 235;
    pub const VSERVER: u64 = 236;
    pub const MBIND: u64 = 237;
    pub const SET_MEMPOLICY: u64 = 238;
    pub const GET_MEMPOLICY: u64 = 239;
    pub const MQ_OPEN: u64 = 240;
    pub const MQ_UNLINK: u64 = 241;
    pub const MQ_TIMEDSEND: u64 = 242;
    pub const MQ_TIMEDRECEIVE: u64 = 243;
    pub const MQ_NOTIFY: u64 = 244;
    pub const MQ_GETSETATTR: u64 = 245;
    pub const KEXEC_LOAD: u64 = 246;
    pub const WAITID: u64 = 247;
    pub const ADD_KEY: u64 = 248;
    pub const REQUEST_KEY: u64 = 249;
    pub const KEYCTL: u64 = 250;
    pub const IOPRIO_SET: u64 = 251;
    pub const IOPRIO_GET: u64 = 252;
    pub const INOTIFY_INIT: u64 = 253;
    pub const INOTIFY_ADD_WATCH: u64 = 254;
    pub const INOTIFY_RM_WATCH: u64 = 255;
    pub const MIGRATE_PAGES: u64 = 256;
    pub const OPENAT: u64 = 257;
    pub const MKDIRAT: u64 = 258;
    pub const MKNODAT: u64 = 259;
    pub const FCHOWNAT: u64 = 260;
    pub const FUTIMESAT: u64 = 261;
    pub const NEWFSTATAT: u64 = 262;
    pub const UNLINKAT: u64 = 263;
    pub const RENAMEAT: u64 = 264;
    pub const LINKAT: u64 = 265;
    pub const SYMLINKAT: u64 = 266;
    pub const READLINKAT: u64 = 267;
    pub const FCHMODAT: u64 = 268;
    pub const FACCESSAT: u64 = 269;
    pub const PSELECT6: u64 = 270;
    pub const PPOLL: u64 = 271;
    pub const UNSHARE: u64 = 272;
    pub const SET_ROBUST_LIST: u64 = 273;
    pub const GET_ROBUST_LIST: u64 = 274;
    pub const SPLICE: u64 = 275;
    pub const TEE: u64 = 276;
    pub const SYNC_FILE_RANGE: u64 = 277;
    pub const VMSPLICE: u64 = 278;
    pub const MOVE_PAGES: u64 = 279;
    pub const UTIMENSAT: u64 = 280;
    pub const EPOLL_PWAIT: u64 = 281;
    pub const SIGNALFD: u64 = 282;
    pub const TIMERFD_CREATE: u64 = 283;
    pub const EVENTFD: u64 = 284;
    pub const FALLOCATE: u64 = 285;
    pub const TIMERFD_SETTIME: u64 = 286;
    pub const TIMERFD_GETTIME: u64 = 287;
    pub const ACCEPT4: u64 = 288;
    pub const SIGNALFD4: u64 = 289;
    pub const EVENTFD2: u64 = 290;
    pub const EPOLL_CREATE1: u64 = 291;
    pub const DUP3: u64 = 292;
    pub const PIPE2: u64 = 293;
    pub const INOTIFY_INIT1: u64 = 294;
    pub const PREADV: u64 = 295;
    pub const PWRITEV: u64 = 296;
    pub const RT_TGSIGQUEUEINFO: u64 = 297;
    pub const PERF_EVENT_OPEN: u64 = 298;
    pub const RECVMMSG: u64 = 299;
    pub const FANOTIFY_INIT: u64 = 300;
    pub const FANOTIFY_MARK: u64 = 301;
    pub const PRLIMIT64: u64 = 302;
    pub const NAME_TO_HANDLE_AT: u64 = 303;
    pub const OPEN_BY_HANDLE_AT: u64 = 304;
    pub const CLOCK_ADJTIME: u64 = 305;
    pub const SYNCFS: u64 = 306;
    pub const SENDMMSG: u64 = 307;
    pub const SETNS: u64 = 308;
    pub const GETCPU: u64 = 309;
    pub const PROCESS_VM_READV: u64 = 310;
    pub const PROCESS_VM_WRITEV: u64 = 311;
    pub const KCMP: u64 = 312;
    pub const FINIT_MODULE: u64 = 313;
    pub const SCHED_SETATTR: u64 = 314;
    pub const SCHED_GETATTR: u64 = 315;
    pub const RENAMEAT2: u64 = 316;
    pub const SECCOMP: u64 = 317;
    pub const GETRANDOM: u64 = 318;
    pub const MEMFD_CREATE: u64 = 319;
    pub const KEXEC_FILE_LOAD: u64 = 320;
    pub const BPF: u64 = 321;
    pub const EXECVEAT: u64 = 322;
    pub const USERFAULTFD: u64 = 323;
    pub const MEMBARRIER: u64 = 324;
    pub const MLOCK2: u64 = 325;
    pub const COPY_FILE_RANGE: u64 = 326;
    pub const PREADV2: u64 = 327;
    pub const PWRITEV2: u64 = 328;
    pub const PKEY_MPROTECT: u64 = 329;
    pub const PKEY_ALLOC: u64 = 330;
    pub const PKEY_FREE: u64 = 331;
    pub const STATX: u64 = 332;
    pub const IO_PGETEVENTS: u64 = 333;
    pub const RSEQ: u64 = 334;
    pub const URETPROBE: u64 = 335;
    pub const UPROBE: u64 = 336;
    pub const PIDFD_SEND_SIGNAL: u64 = 424;
    pub const IO_URING_SETUP: u64 = 425;
    pub const IO_URING_ENTER: u64 = 426;
    pub const IO_URING_REGISTER: u64 = 427;
    pub const OPEN_TREE: u64 = 428;
    pub const MOVE_MOUNT: u64 = 429;
    pub const FSOPEN: u64 = 430;
    pub const FSCONFIG: u64 = 431;
    pub const FSMOUNT: u64 = 432;
    pub const FSPICK: u64 = 433;
    pub const PIDFD_OPEN: u64 = 434;
    pub const CLONE3: u64 = 435;
    pub const CLOSE_RANGE: u64 = 436;
    pub const OPENAT2: u64 = 437;
    pub const PIDFD_GETFD: u64 = 438;
    pub const FACCESSAT2: u64 = 439;
    pub const PROCESS_MADVISE: u64 = 440;
    pub const EPOLL_PWAIT2: u64 = 441;
    pub const MOUNT_SETATTR: u64 = 442;
    pub const QUOTACTL_FD: u64 = 443;
    pub const LANDLOCK_CREATE_RULESET: u64 = 444;
    pub const LANDLOCK_ADD_RULE: u64 = 445;
    pub const LANDLOCK_RESTRICT_SELF: u64 = 446;
    pub const MEMFD_SECRET: u64 = 447;
    pub const PROCESS_MRELEASE: u64 = 448;
    pub const FUTEX_WAITV: u64 = 449;
    pub const SET_MEMPOLICY_HOME_NODE: u64 = 450;
    pub const CACHESTAT: u64 = 451;
    pub const FCHMODAT2: u64 = 452;
    pub const MAP_SHADOW_STACK: u64 = 453;
    pub const FUTEX_WAKE: u64 = 454;
    pub const FUTEX_WAIT: u64 = 455;
    pub const FUTEX_REQUEUE: u64 = 456;
    pub const STATMOUNT: u64 = 457;
    pub const LISTMOUNT: u64 = 458;
    pub const LSM_GET_SELF_ATTR: u64 = 459;
    pub const LSM_SET_SELF_ATTR: u64 = 460;
    pub const LSM_LIST_MODULES: u64 = 461;
    pub const MSEAL: u64 = 462;
    pub const SETXATTRAT: u64 = 463;
    pub const GETXATTRAT: u64 = 464;
    pub const LISTXATTRAT: u64 = 465;
    pub const REMOVEXATTRAT: u64 = 466;
    pub const OPEN_TREE_ATTR: u64 = 467;
    pub const FILE_GETATTR: u64 = 468;
    pub const FILE_SETATTR: u64 = 469;
}
