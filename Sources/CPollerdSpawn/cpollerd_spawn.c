#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include "cpollerd_spawn.h"

int cpollerd_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int cpollerd_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int cpollerd_pidfd_open(int pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    return -1;
#endif
}

int cpollerd_set_child_subreaper(void) {
#ifdef __linux__
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#else
    return -1;
#endif
}

#if defined(__GLIBC__)
#include <malloc.h>
int cpollerd_release_free_memory(void) { return malloc_trim(0); }
#else
int cpollerd_release_free_memory(void) { return 0; }
#endif

int cpollerd_has_exited(int pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) return -1;
    return info.si_pid == pid ? 1 : 0;
}

#ifdef __linux__
struct spawn_child_args {
    const struct cpollerd_spawn_request *req;
    sigset_t restore;
    volatile int err;
};

/* The child, on its own stack in the parent's memory (CLONE_VM | CLONE_VFORK): the parent
   thread is suspended until this execs or exits. Only system calls from here on. */
static int spawn_child(void *arg) {
    struct spawn_child_args *a = arg;
    const struct cpollerd_spawn_request *r = a->req;
    /* Handlers are the daemon's code: none may run here. Ignored signals the daemon watches stay
       ignored across exec unless reset; everything goes back to its default. */
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) != 0) continue;
        if (sa.sa_handler == SIG_DFL) continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(sig, &sa, NULL);
    }
    if (setpgid(0, 0) != 0) goto fail;
    if (r->death_signal > 0) {
        if (prctl(PR_SET_PDEATHSIG, r->death_signal, 0, 0, 0) != 0) goto fail;
        /* The daemon died between the clone and the prctl: the signal will never come. */
        if (getppid() != r->parent_pid) _exit(127);
    }
    if (r->set_nice) {
        errno = 0;
        (void)nice(r->nice);
    }
    if (r->cgroup_procs_fd >= 0) {
        /* "0" moves the writer itself: the plugin runs no instruction outside its cgroup. */
        if (write(r->cgroup_procs_fd, "0", 1) != 1) goto fail;
    }
    if (dup2(r->stdin_fd, 0) < 0 || dup2(r->stdout_fd, 1) < 0 || dup2(r->stderr_fd, 2) < 0) goto fail;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3, ~0U, 0) != 0)
#endif
    {
        for (int fd = 3; fd < 65536; fd++) close(fd);
    }
    if (r->working_directory && chdir(r->working_directory) != 0) goto fail;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(r->path, r->argv, r->envp);
fail:
    a->err = errno ? errno : EINVAL;
    _exit(127);
}

int cpollerd_spawn(const struct cpollerd_spawn_request *req, int *pid_out) {
    struct spawn_child_args args;
    memset(&args, 0, sizeof args);
    args.req = req;
    size_t stack_size = 64 * 1024;
    char *stack = malloc(stack_size);
    if (!stack) return ENOMEM;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &args.restore);
    int pid = clone(spawn_child, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &args.restore, NULL);
    free(stack);
    if (pid < 0) return clone_errno;
    if (args.err != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return args.err;
    }
    *pid_out = pid;
    return 0;
}
#else
int cpollerd_spawn(const struct cpollerd_spawn_request *req, int *pid_out) { return ENOSYS; }
#endif
