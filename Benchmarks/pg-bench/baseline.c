/* The bare baseline for pollerd's PostgreSQL store: the same claim and commit statements
 * (written by `pollerd-bench pg-setup` to DIR/claim.sql and DIR/commit.sql), in batches of the
 * same size, from THREADS connections each looping claim -> commit over its own jobs, with
 * nothing else: no scheduler, no JSON encoder of note, no Swift. Prints one JSON line with the
 * ticks (claims granted and committed) per second.
 *
 * build: cc -O2 -o baseline baseline.c -lpq -lpthread
 * usage: baseline URL DIR JOBS BATCH THREADS SECONDS
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *url, *claim_sql, *commit_sql;
static int jobs, batch, threads, seconds;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(n + 1);
    if (fread(s, 1, n, f) != (size_t)n) { perror(path); exit(2); }
    s[n] = 0;
    fclose(f);
    return s;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct worker { int first, count; long long ticks; };

/* Appends to a growing buffer. */
struct buf { char *s; size_t n, cap; };
static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void put(struct buf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && b->n + (size_t)k < b->cap) { b->n += k; return; }
        b->cap = b->cap * 2 + 4096;
        b->s = realloc(b->s, b->cap);
    }
}

static void *run(void *arg) {
    struct worker *w = arg;
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) { fprintf(stderr, "%s", PQerrorMessage(c)); exit(1); }
    struct buf ids = {0}, ttl = {0}, slot = {0}, has = {0}, bnd = {0}, hasb = {0}, commits = {0};
    char holder[64];
    snprintf(holder, sizeof holder, "baseline:%d:x", w->first);
    int next = 0;
    int *batch_jobs = malloc(sizeof(int) * batch);
    unsigned long long counter = 0;
    double end = mono() + seconds;
    while (mono() < end) {
        long long now = now_ms();
        ids.n = ttl.n = slot.n = has.n = bnd.n = hasb.n = commits.n = 0;
        put(&ids, "{"); put(&ttl, "{"); put(&slot, "{"); put(&has, "{"); put(&bnd, "{"); put(&hasb, "{");
        for (int i = 0; i < batch; i++) {
            int j = w->first + (next + i) % w->count;
            batch_jobs[i] = j;
            const char *sep = i ? "," : "";
            put(&ids, "%sjob-%d", sep, j);
            put(&ttl, "%s60000", sep);
            put(&slot, "%s%lld", sep, now);
            put(&has, "%st", sep);
            put(&bnd, "%s0", sep);
            put(&hasb, "%sf", sep);
        }
        next = (next + batch) % w->count;
        put(&ids, "}"); put(&ttl, "}"); put(&slot, "}"); put(&has, "}"); put(&bnd, "}"); put(&hasb, "}");
        const char *cp[8] = {ids.s, ttl.s, slot.s, has.s, bnd.s, hasb.s, holder, NULL};
        PGresult *r = PQexecParams(c, claim_sql, 8, NULL, cp, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) { fprintf(stderr, "claim: %s", PQerrorMessage(c)); exit(1); }
        /* Granted rows: column 3 (the new token) is not null. The job id is the request's. */
        put(&commits, "[");
        int granted = 0;
        for (int row = 0; row < PQntuples(r); row++) {
            if (PQgetisnull(r, row, 3)) continue;
            int ord = atoi(PQgetvalue(r, row, 0)) - 1;
            int j = batch_jobs[ord];
            counter++;
            /* An 8-byte cursor, as noop's advance_cursor: base64 of the counter. */
            static const char *b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            unsigned char raw[8];
            for (int k = 0; k < 8; k++) raw[k] = (counter >> (56 - 8 * k)) & 0xff;
            char cur[13];
            for (int k = 0, o = 0; k < 9; k += 3) {
                unsigned v = raw[k] << 16 | (k + 1 < 8 ? raw[k + 1] << 8 : 0) | (k + 2 < 8 ? raw[k + 2] : 0);
                cur[o++] = b64[v >> 18 & 63]; cur[o++] = b64[v >> 12 & 63];
                cur[o++] = k + 1 < 8 ? b64[v >> 6 & 63] : '=';
                cur[o++] = k + 2 < 8 ? b64[v & 63] : '=';
            }
            cur[12] = 0;
            put(&commits,
                "%s{\"i\":%d,\"job_id\":\"job-%d\",\"holder\":\"%s\",\"token\":%s,\"cursor\":\"%s\","
                "\"started_at\":%lld,\"next_run_at\":%lld,\"status\":\"ok\",\"error\":null,\"duration_ms\":0,"
                "\"consecutive_errors\":0,\"items_seen\":0,\"items_dispatched\":0,\"pause\":false,"
                "\"paused_reason\":null,\"done\":false,\"alert_at\":null,\"schedule_fp\":\"every=2\",\"keep\":100,"
                "\"slot_at\":%lld,\"items_found\":0,\"hist_cursor\":\"%s\",\"cursor_changed\":true,\"has_sinks\":false}",
                granted ? "," : "", granted, j, holder, PQgetvalue(r, row, 3), cur, now, now + 2000, now, cur);
            granted++;
        }
        put(&commits, "]");
        PQclear(r);
        if (granted == 0) continue;
        char nowtext[32];
        snprintf(nowtext, sizeof nowtext, "%lld", now);
        const char *mp[5] = {commits.s, "[]", "[]", "[]", nowtext};
        r = PQexecParams(c, commit_sql, 5, NULL, mp, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) { fprintf(stderr, "commit: %s", PQerrorMessage(c)); exit(1); }
        for (int row = 0; row < PQntuples(r); row++)
            if (PQgetvalue(r, row, 1)[0] == 't') w->ticks++;
        PQclear(r);
    }
    PQfinish(c);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: baseline URL DIR JOBS BATCH THREADS SECONDS\n"); return 64; }
    url = argv[1];
    char p[4096];
    snprintf(p, sizeof p, "%s/claim.sql", argv[2]); claim_sql = slurp(p);
    snprintf(p, sizeof p, "%s/commit.sql", argv[2]); commit_sql = slurp(p);
    jobs = atoi(argv[3]); batch = atoi(argv[4]); threads = atoi(argv[5]); seconds = atoi(argv[6]);
    pthread_t t[256];
    struct worker w[256];
    int per = jobs / threads;
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){.first = i * per, .count = per, .ticks = 0};
        pthread_create(&t[i], NULL, run, &w[i]);
    }
    long long ticks = 0;
    for (int i = 0; i < threads; i++) { pthread_join(t[i], NULL); ticks += w[i].ticks; }
    printf("{\"system\":\"libpq baseline\",\"batch\":%d,\"threads\":%d,\"seconds\":%d,\"ticks_per_sec\":%.1f}\n",
           batch, threads, seconds, (double)ticks / seconds);
    return 0;
}
