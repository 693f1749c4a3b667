/* A minimal poller plugin in C for the benchmarks. Ephemeral (NEXO_POLLER_EPHEMERAL=1): read one
 * request line, write one reply line, exit. Long-lived: answer initialize and each poll_tick with
 * the same id, until EOF or shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long frame_id(const char *line) {
    const char *p = strstr(line, "\"id\":");
    return p ? strtol(p + 5, NULL, 10) : 0;
}

int main(void) {
    static char line[1 << 20];
    const char *reply = "{\"next_cursor\":\"d29ybGQ\",\"metrics\":{\"items_seen\":1,\"items_dispatched\":0}}";
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if (getenv("NEXO_POLLER_EPHEMERAL")) {
        if (!fgets(line, sizeof line, stdin)) return 1;
        printf("{\"result\":%s}\n", reply);
        return 0;
    }
    while (fgets(line, sizeof line, stdin)) {
        long id = frame_id(line);
        if (strstr(line, "\"initialize\""))
            printf("{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"manifest\":{\"plugin\":{\"id\":\"cbench\"}}}}\n", id);
        else if (strstr(line, "\"shutdown\"")) {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"ok\":true}}\n", id);
            fflush(stdout);
            return 0;
        } else
            printf("{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":%s}\n", id, reply);
        /* Flush when no more input is already buffered: batches under load, answers lockstep at once. */
        if (stdin->_IO_read_ptr >= stdin->_IO_read_end) fflush(stdout);
    }
    return 0;
}
