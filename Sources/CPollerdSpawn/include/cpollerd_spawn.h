// GNU extensions that Swift's Glibc module does not expose (it is built without _GNU_SOURCE).
#ifndef CPOLLERD_SPAWN_H
#define CPOLLERD_SPAWN_H

/// pipe2(fds, O_CLOEXEC): both ends close-on-exec from the start, so a child spawned by another
/// thread in between cannot inherit them.
int cpollerd_pipe_cloexec(int fds[2]);

/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC): a counter a thread can poll(2) to be woken.
int cpollerd_eventfd(void);

/// pidfd_open(pid, 0): a descriptor that polls readable when the process exits (Linux 5.3+);
/// -1 with errno set when the kernel lacks it.
int cpollerd_pidfd_open(int pid);

/// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are reparented to this process, not
/// to init (Linux 3.4+); -1 with errno set where it is not available.
int cpollerd_set_child_subreaper(void);

/// malloc_trim(0): returns the allocator's free pages to the kernel (glibc); 0 elsewhere.
int cpollerd_release_free_memory(void);

/// 1 when child `pid` has exited and waits to be reaped (it is not reaped: its pid, and so its
/// process group id, stay taken), 0 while it runs, -1 with errno set when it is no child.
int cpollerd_has_exited(int pid);

/// What `cpollerd_spawn` starts, and how.
struct cpollerd_spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    /// The child starts here (NULL: where the daemon is).
    const char *working_directory;
    /// The child's ends of its three pipes.
    int stdin_fd, stdout_fd, stderr_fd;
    /// `cgroup.procs` of the cgroup the child runs in, open for writing; -1 for none.
    int cgroup_procs_fd;
    /// Lower the child's CPU priority by `nice` steps below the daemon's when `set_nice` is non-zero.
    int set_nice, nice;
    /// Sent to the child when the thread that spawned it exits (PR_SET_PDEATHSIG); 0 for none.
    int death_signal;
    /// The daemon's pid: a child whose parent is already another process exits at once.
    int parent_pid;
};

/// Starts `req->path` as posix_spawn does (a CLONE_VM | CLONE_VFORK child that execs), and also
/// does what posix_spawn cannot: the child's death signal, its nice value and its cgroup, set in
/// the child before it execs, so nothing the plugin runs is ever outside them. The child gets a
/// process group of its own, the three pipes as 0–2 and no other descriptor, default signal
/// dispositions and an empty mask. Returns 0 and the pid, or an errno value (from the child's
/// exec or set-up when it failed there).
int cpollerd_spawn(const struct cpollerd_spawn_request *req, int *pid_out);

#endif
