/* The physical limit of a durable JSON-lines sink: append N copies of a line to a file,
 * BATCH lines per write(2), fsync(2) after each write -- what pollerd's file sink must do
 * at least. Prints {"per_sec": lines per second}.
 * usage: baseline N BATCH PATH LINE */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s N BATCH PATH LINE\n", argv[0]); return 64; }
    long n = atol(argv[1]), batch = atol(argv[2]);
    const char *line = argv[4];
    size_t len = strlen(line);
    char *buf = malloc((len + 1) * batch);
    for (long i = 0; i < batch; i++) { memcpy(buf + i * (len + 1), line, len); buf[i * (len + 1) + len] = '\n'; }
    int fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long done = 0; done < n; done += batch) {
        long k = n - done < batch ? n - done : batch;
        size_t want = k * (len + 1), off = 0;
        while (off < want) {
            ssize_t w = write(fd, buf + off, want - off);
            if (w < 0) { perror("write"); return 1; }
            off += (size_t)w;
        }
        if (fsync(fd) != 0) { perror("fsync"); return 1; }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("{\"per_sec\": %.1f, \"lines\": %ld, \"secs\": %.3f}\n", n / secs, n, secs);
    close(fd);
    return 0;
}
