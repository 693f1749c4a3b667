/* The physical limits the plugin benchmarks compare against, written as plainly as possible:
 *   baseline spawn N PLUGIN        posix_spawn the plugin N times through pipes, one after another:
 *                                  write the request line, close stdin, read the reply, waitpid.
 *   baseline pipe N INFLIGHT PLUGIN  one long-lived plugin; N requests with INFLIGHT outstanding.
 * Prints one JSON line: {"baseline": ..., "per_sec": ...}. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static char REQ[512], PARAMS[400];

static void build_requests(void) {
    const char *kind = getenv("BENCH_KIND") ? getenv("BENCH_KIND") : "cbench";
    snprintf(PARAMS, sizeof PARAMS, "{\"agent_id\":\"default\",\"config\":{},\"cursor\":null,\"interval_hint_secs\":60,\"job_id\":\"bench\",\"kind\":\"%s\",\"now\":\"2026-05-17T10:00:00+00:00\"}", kind);
    snprintf(REQ, sizeof REQ, "{\"method\":\"poll_tick\",\"params\":%s}\n", PARAMS);
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static char **plugin_argv;

static pid_t start(const char *plugin, int *in, int *out, int ephemeral) {
    int a[2], b[2];
    if (pipe(a) || pipe(b)) exit(2);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, a[0], 0);
    posix_spawn_file_actions_adddup2(&fa, b[1], 1);
    posix_spawn_file_actions_addclose(&fa, a[1]);
    posix_spawn_file_actions_addclose(&fa, b[0]);
    char *envp[] = {ephemeral ? "NEXO_POLLER_EPHEMERAL=1" : "X=1", "PATH=/usr/bin:/bin", NULL};
    pid_t pid;
    if (posix_spawn(&pid, plugin, &fa, NULL, plugin_argv, envp)) exit(3);
    posix_spawn_file_actions_destroy(&fa);
    close(a[0]); close(b[1]);
    *in = a[1]; *out = b[0];
    return pid;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: baseline spawn N PLUGIN [ARGS] | pipe N INFLIGHT PLUGIN [ARGS]\n"); return 64; }
    build_requests();
    plugin_argv = !strcmp(argv[1], "spawn") ? &argv[3] : &argv[4];
    static char buf[1 << 16];
    long n = atol(argv[2]);
    double t0 = now();
    if (!strcmp(argv[1], "spawn")) {
        for (long i = 0; i < n; i++) {
            int in, out;
            pid_t pid = start(argv[3], &in, &out, 1);
            if (write(in, REQ, strlen(REQ)) < 0) return 4;
            close(in);
            while (read(out, buf, sizeof buf) > 0) {}
            close(out);
            waitpid(pid, NULL, 0);
        }
        printf("{\"baseline\":\"c-spawn\",\"count\":%ld,\"per_sec\":%.1f}\n", n, n / (now() - t0));
        return 0;
    }
    long inflight = atol(argv[3]);
    int in, out;
    pid_t pid = start(argv[4], &in, &out, 0);
    FILE *r = fdopen(out, "r");
    char line[4096], req[1024];
    long sent = 0, got = 0;
    t0 = now();
    while (got < n) {
        while (sent < n && sent - got < inflight) {
            int len = snprintf(req, sizeof req, "{\"id\":%ld,\"jsonrpc\":\"2.0\",\"method\":\"poll_tick\",\"params\":%s}\n", sent + 2, PARAMS);
            if (write(in, req, len) < 0) return 4;
            sent++;
        }
        if (!fgets(line, sizeof line, r)) return 5;
        got++;
    }
    double dt = now() - t0;
    close(in);
    waitpid(pid, NULL, 0);
    printf("{\"baseline\":\"c-pipe\",\"count\":%ld,\"in_flight\":%ld,\"per_sec\":%.1f}\n", n, inflight, n / dt);
    return 0;
}
