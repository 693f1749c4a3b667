/*
 * The claim statement's shapes, timed through SQLite's C API on a state table of 100k rows
 * (the columns the claim reads and writes, rows of about the daemon's size), each in its own
 * transaction over every row in random order:
 *   - UPDATE ... RETURNING (the claim before session 14);
 *   - SELECT by job_id, then UPDATE by rowid (the claim since);
 *   - the same UPDATE without RETURNING (no answer: a floor, not a usable claim);
 *   - UPDATE by rowid and job_id (the commit's shape when its claim handed over the rowid).
 * Usage: claim DB_PATH   (the file is overwritten). Prints µs per row for each, three rounds.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define N 100000

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, 0) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
    return s;
}

static void exec(sqlite3 *db, const char *sql) {
    char *err = 0;
    if (sqlite3_exec(db, sql, 0, 0, &err) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, err);
        exit(1);
    }
}

static char ids[N][16];
static long long rowids[N];
static int order[N];

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s DB_PATH\n", argv[0]); return 64; }
    remove(argv[1]);
    sqlite3 *db;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, 0) != SQLITE_OK) return 1;
    exec(db, "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA cache_size = -32768; PRAGMA synchronous = OFF");
    exec(db, "CREATE TABLE poll_state (job_id TEXT PRIMARY KEY NOT NULL, kind TEXT, agent TEXT, cursor BLOB, next_run_at INTEGER,"
             " paused INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0, consecutive_errors INTEGER NOT NULL DEFAULT 0,"
             " last_alert_at INTEGER, lease_holder TEXT, lease_token INTEGER NOT NULL DEFAULT 0, lease_until INTEGER NOT NULL DEFAULT 0,"
             " outbox_backlog INTEGER NOT NULL DEFAULT 0, rest TEXT)");
    sqlite3_stmt *ins = prepare(db, "INSERT INTO poll_state (job_id, kind, agent, cursor, rest) VALUES (?, 'noop', 'a', x'00112233', printf('%.150c', 'x'))");
    exec(db, "BEGIN");
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "job-%06d", i);
        sqlite3_bind_text(ins, 1, ids[i], -1, SQLITE_STATIC);
        sqlite3_step(ins);
        sqlite3_reset(ins);
        rowids[i] = sqlite3_last_insert_rowid(db);
        order[i] = i;
    }
    exec(db, "COMMIT");
    srand(1);
    for (int i = N - 1; i > 0; i--) { int j = rand() % (i + 1), t = order[i]; order[i] = order[j]; order[j] = t; }

    sqlite3_stmt *returning = prepare(db,
        "UPDATE poll_state SET lease_holder = ?1, lease_token = lease_token + 1, lease_until = ?2 WHERE job_id = ?3"
        " AND (lease_until <= ?4 OR lease_holder = ?1) AND paused = 0 AND done = 0 AND outbox_backlog < ?5"
        " RETURNING lease_token, cursor, consecutive_errors, last_alert_at");
    sqlite3_stmt *read = prepare(db,
        "SELECT rowid, lease_token, cursor, consecutive_errors, last_alert_at FROM poll_state WHERE job_id = ?1"
        " AND (lease_until <= ?2 OR lease_holder = ?3) AND paused = 0 AND done = 0 AND outbox_backlog < ?4");
    sqlite3_stmt *write = prepare(db, "UPDATE poll_state SET lease_holder = ?1, lease_token = ?2, lease_until = ?3 WHERE rowid = ?4");
    sqlite3_stmt *bare = prepare(db,
        "UPDATE poll_state SET lease_holder = ?1, lease_token = lease_token + 1, lease_until = ?2 WHERE job_id = ?3"
        " AND (lease_until <= ?4 OR lease_holder = ?1) AND paused = 0 AND done = 0 AND outbox_backlog < ?5");
    sqlite3_stmt *byRow = prepare(db,
        "UPDATE poll_state SET lease_holder = ?1, lease_token = lease_token + 1, lease_until = ?2 WHERE rowid = ?3 AND job_id = ?4"
        " AND (lease_until <= ?5 OR lease_holder = ?1) AND paused = 0 AND done = 0 AND outbox_backlog < ?6");
    const long long big = 1LL << 62;
    long long t = 1000, seen = 0;
    for (int round = 0; round < 3; round++) {
        double start, us[4];
        exec(db, "BEGIN"); start = now();
        for (int k = 0; k < N; k++) {
            int i = order[k];
            sqlite3_bind_text(returning, 1, "h", -1, SQLITE_STATIC); sqlite3_bind_int64(returning, 2, t + 5);
            sqlite3_bind_text(returning, 3, ids[i], -1, SQLITE_STATIC); sqlite3_bind_int64(returning, 4, t); sqlite3_bind_int64(returning, 5, big);
            if (sqlite3_step(returning) == SQLITE_ROW) seen += sqlite3_column_int64(returning, 0) + sqlite3_column_bytes(returning, 1);
            sqlite3_reset(returning);
        }
        us[0] = (now() - start) / N * 1e6; exec(db, "COMMIT"); t += 100;
        exec(db, "BEGIN"); start = now();
        for (int k = 0; k < N; k++) {
            int i = order[k];
            sqlite3_bind_text(read, 1, ids[i], -1, SQLITE_STATIC); sqlite3_bind_int64(read, 2, t);
            sqlite3_bind_text(read, 3, "h", -1, SQLITE_STATIC); sqlite3_bind_int64(read, 4, big);
            if (sqlite3_step(read) == SQLITE_ROW) {
                long long row = sqlite3_column_int64(read, 0), token = sqlite3_column_int64(read, 1) + 1;
                seen += sqlite3_column_bytes(read, 2);
                sqlite3_reset(read);
                sqlite3_bind_text(write, 1, "h", -1, SQLITE_STATIC); sqlite3_bind_int64(write, 2, token);
                sqlite3_bind_int64(write, 3, t + 5); sqlite3_bind_int64(write, 4, row);
                sqlite3_step(write);
                sqlite3_reset(write);
            } else {
                sqlite3_reset(read);
            }
        }
        us[1] = (now() - start) / N * 1e6; exec(db, "COMMIT"); t += 100;
        exec(db, "BEGIN"); start = now();
        for (int k = 0; k < N; k++) {
            int i = order[k];
            sqlite3_bind_text(bare, 1, "h", -1, SQLITE_STATIC); sqlite3_bind_int64(bare, 2, t + 5);
            sqlite3_bind_text(bare, 3, ids[i], -1, SQLITE_STATIC); sqlite3_bind_int64(bare, 4, t); sqlite3_bind_int64(bare, 5, big);
            sqlite3_step(bare);
            sqlite3_reset(bare);
        }
        us[2] = (now() - start) / N * 1e6; exec(db, "COMMIT"); t += 100;
        exec(db, "BEGIN"); start = now();
        for (int k = 0; k < N; k++) {
            int i = order[k];
            sqlite3_bind_text(byRow, 1, "h", -1, SQLITE_STATIC); sqlite3_bind_int64(byRow, 2, t + 5); sqlite3_bind_int64(byRow, 3, rowids[i]);
            sqlite3_bind_text(byRow, 4, ids[i], -1, SQLITE_STATIC); sqlite3_bind_int64(byRow, 5, t); sqlite3_bind_int64(byRow, 6, big);
            sqlite3_step(byRow);
            sqlite3_reset(byRow);
        }
        us[3] = (now() - start) / N * 1e6; exec(db, "COMMIT"); t += 100;
        printf("round %d: UPDATE … RETURNING %.2f µs | SELECT, then UPDATE by rowid %.2f µs | UPDATE, no answer %.2f µs | UPDATE by rowid and job_id %.2f µs\n",
               round + 1, us[0], us[1], us[2], us[3]);
    }
    sqlite3_close(db);
    return seen == 0;
}
