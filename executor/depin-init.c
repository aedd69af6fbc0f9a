/* depin-init: the first program of every job container (executor/containers.py, "PID numbers").
 *
 *   depin-init <N> <report> [<mount target>...] -- <command> [<arg>...]
 *
 * The OCI runtime uses a varying number of PIDs of the job's PID namespace before its first
 * program runs (runc's Go threads: four or five), so a job's first child got PID 6 on one run and 7
 * on another. As PID 1, this program forks children that exit at once (reaping each) until one gets
 * PID N, then execs <command> in place: the command keeps PID 1, its argv and environment exactly
 * as given, no signal disposition or mask changed, no file descriptor left open (its report's is
 * close-on-exec), and the next PID of the namespace is N + 1 on every machine (the kernel hands out
 * PIDs in increasing order until pid_max). The command is looked up as runc looks it up (Go's
 * exec.LookPath): a name with a slash as it is, else the first PATH entry holding a non-directory
 * with an execute bit.
 *
 * <report> is an existing empty file whose name is drawn per run (in a directory the job can
 * traverse but not list, mounted under the runtime's own /dev: the job never learns the name, so it
 * can neither remove nor write it). First of all this program writes "init" and a newline to it: the
 * executor's proof that the runtime started the init (a run without it never ran the job). Then it
 * checks that no component of any <mount target> is a symlink (the image's: the runtime followed it
 * and mounted elsewhere, e.g. /out -> /tmp). If it does not exec the command, it writes one line
 * "<kind> <number>" after "init" (and on stderr) and exits 127:
 *   exec <errno>     the command was found but execve failed, or a name with a slash is not an
 *                    executable file (ENOENT, EACCES, ENOEXEC, ...)
 *   notfound 0       no PATH entry holds the command
 *   mount <index>    the <index>th (from 0) mount target has a symlink on its path
 *   fork <errno>     a fork failed
 *   pids <pid>       a child got a PID above N before one got N (the runtime used more)
 *   pid1 <pid>       this program is not PID 1 of its namespace
 *   usage 0          bad arguments
 * When the report cannot be opened it exits 127 with a line on stderr only.
 *
 * Freestanding: raw system calls, no libc (tools/build_init.sh builds it with -nostdlib), so it
 * needs only a C compiler, and it makes no system call the project's seccomp profile refuses.
 */

#define SIGCHLD 17
#define AT_FDCWD (-100)
#define O_WRONLY 01
#define O_NOFOLLOW 0400000
#define O_CLOEXEC 02000000
#define EINTR 4
#define ENOENT 2
#define EACCES 13
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFLNK 0120000
#define AT_SYMLINK_NOFOLLOW 0x100
#define PATH_BUF 8192
#define STATUS_FAILED 127

#if defined(__x86_64__)
#define SYS_write 1
#define SYS_close 3
#define SYS_getpid 39
#define SYS_clone 56
#define SYS_execve 59
#define SYS_wait4 61
#define SYS_exit_group 231
#define SYS_openat 257
#define SYS_newfstatat 262
#define STAT_MODE_OFFSET 24
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
    return ret;
}
__asm__(".text\n.globl _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall start_c\n\thlt\n");
#elif defined(__aarch64__)
#define SYS_write 64
#define SYS_close 57
#define SYS_getpid 172
#define SYS_clone 220
#define SYS_execve 221
#define SYS_wait4 260
#define SYS_exit_group 94
#define SYS_openat 56
#define SYS_newfstatat 79
#define STAT_MODE_OFFSET 16
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
}
__asm__(".text\n.globl _start\n_start:\n\tmov x0, sp\n\tbl start_c\n\tbrk #0\n");
#else
#error "depin-init supports x86_64 and aarch64"
#endif

#define sys3(n, a, b, c) sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)

static __attribute__((noreturn)) void leave(int status) {
    for (;;) sys3(SYS_exit_group, status, 0, 0);
}

static unsigned long length(const char *s) {
    unsigned long n = 0;
    while (s[n]) n++;
    return n;
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

static char *decimal(char *end, unsigned long v) {
    *--end = 0;
    do *--end = (char)('0' + v % 10); while (v /= 10);
    return end;
}

static void put(int fd, const char *s) {
    unsigned long n = length(s);
    while (n) {
        long w = sys3(SYS_write, fd, s, n);
        if (w == -EINTR) continue;
        if (w <= 0) return;
        s += w, n -= (unsigned long)w;
    }
}

static long report = -1;  /* the report's descriptor (close-on-exec) */

/* One line after "init" in the report and on stderr, then exit 127. */
static __attribute__((noreturn)) void fail(const char *kind, unsigned long value) {
    char digits[24];
    char *number = decimal(digits + sizeof digits, value);
    if (report >= 0) {
        put((int)report, kind), put((int)report, " "), put((int)report, number), put((int)report, "\n");
        sys3(SYS_close, report, 0, 0);
    }
    put(2, "depin-init: "), put(2, kind), put(2, " "), put(2, number), put(2, "\n");
    leave(STATUS_FAILED);
}

/* 1 if a component of the absolute `path` is a symlink (lstat), else 0 (a missing one is none). */
static int through_symlink(const char *path) {
    static char prefix[PATH_BUF];
    unsigned long buf[32];
    unsigned long n = 0;
    for (const char *p = path; n + 1 < sizeof prefix; p++) {
        if ((*p == '/' || !*p) && n > 1) {
            prefix[n] = 0;
            long r = sys6(SYS_newfstatat, AT_FDCWD, (long)prefix, (long)buf, AT_SYMLINK_NOFOLLOW, 0, 0);
            if (r == 0 && (*(unsigned int *)((char *)buf + STAT_MODE_OFFSET) & S_IFMT) == S_IFLNK) return 1;
        }
        if (!*p) return 0;
        prefix[n++] = *p;
    }
    return 1;  /* longer than any mount target the executor uses */
}

/* Go's findExecutable: 0 if `path` is a non-directory with an execute bit, else a negative errno. */
static long executable(const char *path) {
    unsigned long buf[32];
    long r = sys6(SYS_newfstatat, AT_FDCWD, (long)path, (long)buf, 0, 0, 0);
    if (r < 0) return r;
    unsigned int mode = *(unsigned int *)((char *)buf + STAT_MODE_OFFSET);
    if ((mode & S_IFMT) == S_IFDIR || !(mode & 0111)) return -EACCES;
    return 0;
}

static long parse(const char *s) {
    long v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

__attribute__((used, noreturn)) void start_c(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;
    if (argc < 3) fail("usage", 0);
    report = sys6(SYS_openat, AT_FDCWD, (long)argv[2], O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0, 0, 0);
    if (report < 0) {
        put(2, "depin-init: cannot open its report\n");
        leave(STATUS_FAILED);
    }
    put((int)report, "init\n");
    long dash = 3;
    while (dash < argc && !same(argv[dash], "--")) dash++;
    if (dash + 1 >= argc) fail("usage", 0);
    long target = parse(argv[1]);
    if (target < 2) fail("usage", 0);
    for (long i = 3; i < dash; i++)
        if (argv[i][0] != '/' || through_symlink(argv[i])) fail("mount", (unsigned long)(i - 3));
    long self = sys3(SYS_getpid, 0, 0, 0);
    if (self != 1) fail("pid1", (unsigned long)self);
    for (;;) {
        long pid = sys6(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
        if (pid == 0) leave(0);
        if (pid < 0) fail("fork", (unsigned long)-pid);
        long r;
        do r = sys6(SYS_wait4, pid, 0, 0, 0, 0, 0); while (r == -EINTR);
        if (pid == target) break;
        if (pid > target) fail("pids", (unsigned long)pid);
    }
    char **command = argv + dash + 1;
    const char *name = command[0];
    const char *p;
    for (p = name; *p && *p != '/'; p++) {}
    if (*p == '/') {
        long r = executable(name);
        if (r == 0) r = sys3(SYS_execve, name, command, envp);
        fail("exec", (unsigned long)-r);
    }
    const char *path = 0;
    for (char **e = envp; *e && !path; e++) {  /* the first PATH=, as Go's Getenv */
        const char *s = *e;
        if (s[0] == 'P' && s[1] == 'A' && s[2] == 'T' && s[3] == 'H' && s[4] == '=') path = s + 5;
    }
    if (path && !*path) path = 0;  /* an empty PATH searches nowhere (Go's filepath.SplitList) */
    static char candidate[PATH_BUF];
    unsigned long name_len = length(name);
    while (path) {
        const char *end = path;
        while (*end && *end != ':') end++;
        unsigned long dir_len = (unsigned long)(end - path);
        const char *dir = dir_len ? path : ".";
        if (!dir_len) dir_len = 1;
        while (dir_len > 1 && dir[dir_len - 1] == '/') dir_len--;
        if (dir_len + 1 + name_len + 1 <= sizeof candidate) {
            unsigned long n = 0;
            for (unsigned long i = 0; i < dir_len; i++) candidate[n++] = dir[i];
            if (candidate[n - 1] != '/') candidate[n++] = '/';
            for (unsigned long i = 0; i < name_len; i++) candidate[n++] = name[i];
            candidate[n] = 0;
            if (executable(candidate) == 0) {
                long r = sys3(SYS_execve, candidate, command, envp);
                fail("exec", (unsigned long)-r);
            }
        }
        path = *end ? end + 1 : 0;
    }
    fail("notfound", 0);
}
