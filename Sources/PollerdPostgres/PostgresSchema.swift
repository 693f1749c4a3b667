/// The PostgreSQL schema, as numbered migrations. `prepare()` applies the missing ones in one
/// transaction that first takes a transaction-scoped advisory lock: daemons that start together
/// on a new database migrate it once, and the others wait for the lock and then find nothing to do.
///
/// What keeps the tables healthy under constant updates (the reason for each index is in
/// docs/architecture.md):
/// - `poll_state` is updated by every claim and every commit. Its only index is its primary key,
///   on a column no update touches, so every update can be HOT (no index entry written) when the
///   page has room; `fillfactor = 70` leaves that room.
/// - `outbox_lane` is updated by every commit that queues items and by every settle: again only
///   its primary key, and `fillfactor = 70`. A claim scans the lanes; their number is the jobs'
///   sinks, not the items. A job's backlog is its fullest lane's `pending` (a lane delivers in
///   order, so the fullest holds every item another lane still holds): no counter row that
///   commits and settles would both lock.
/// - `outbox_item`, `outbox_pending`, `dedup_key`, `tick_log`: rows are inserted and deleted,
///   never updated in place (but for `outbox_item.remaining`, which only items with several sinks
///   change), and deleted in the statement that makes them obsolete: a settle deletes what it
///   acknowledged, a commit trims its job's history and dedup window.
enum PostgresSchema {
    /// The advisory lock key `prepare()` holds while it migrates ("pollerd" in ASCII).
    static let migrationLock: Int64 = 0x706F_6C6C_6572_64

    /// Every table of the schema (what `state check` reads).
    static let tables = [
        "poll_state", "control_log", "daemons", "daemon_jobs", "plugin_status", "audit_log", "tick_log", "outbox_item",
        "outbox_pending", "outbox_lane", "served_sink", "dedup_key", "dead_letter",
    ]

    static let migrations: [(id: String, sql: String)] = [
        (
            "001_schema",
            """
            CREATE TABLE poll_state (
              job_id text PRIMARY KEY,
              kind text NOT NULL,
              agent text NOT NULL,
              cursor bytea,
              last_run_at int8,
              next_run_at int8,
              last_status text,
              last_error text,
              last_duration_ms int8,
              consecutive_errors int4 NOT NULL DEFAULT 0,
              ticks_total int8 NOT NULL DEFAULT 0,
              items_seen_total int8 NOT NULL DEFAULT 0,
              items_dispatched_total int8 NOT NULL DEFAULT 0,
              paused bool NOT NULL DEFAULT false,
              paused_reason text,
              paused_at int8,
              done bool NOT NULL DEFAULT false,
              schedule_fp text,
              definition_fp text,
              last_alert_at int8,
              last_ok_at int8,
              lease_holder text,
              lease_token int8 NOT NULL DEFAULT 0,
              lease_until int8 NOT NULL DEFAULT 0,
              created_at int8 NOT NULL,
              updated_at int8 NOT NULL
            ) WITH (fillfactor = 70);

            CREATE TABLE control_log (
              seq bigserial PRIMARY KEY,
              xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
              job_id text NOT NULL,
              action text NOT NULL,
              at int8 NOT NULL
            );
            CREATE INDEX control_log_xid ON control_log (xid);

            CREATE TABLE daemons (
              daemon_id text PRIMARY KEY,
              job_file text NOT NULL,
              started_at int8 NOT NULL,
              alive_until int8 NOT NULL
            );
            CREATE TABLE daemon_jobs (
              daemon_id text NOT NULL,
              job_id text NOT NULL,
              definition_fp text,
              PRIMARY KEY (daemon_id, job_id)
            );
            CREATE INDEX daemon_jobs_by_job ON daemon_jobs (job_id);

            CREATE TABLE plugin_status (
              daemon_id text NOT NULL,
              plugin_id text NOT NULL,
              lifecycle text NOT NULL,
              phase text NOT NULL,
              pid int4,
              restarts int4 NOT NULL,
              ticks int8 NOT NULL,
              failures int8 NOT NULL,
              last_error text,
              stderr_tail text NOT NULL,
              updated_at int8 NOT NULL,
              PRIMARY KEY (plugin_id, daemon_id)
            );

            CREATE TABLE audit_log (
              seq bigserial PRIMARY KEY,
              at int8 NOT NULL,
              actor text NOT NULL,
              action text NOT NULL,
              job_id text,
              detail text
            );
            CREATE INDEX audit_log_job ON audit_log (job_id, seq);

            CREATE TABLE tick_log (
              pos bigserial PRIMARY KEY,
              job_id text NOT NULL,
              keep int4 NOT NULL,
              seq int8 NOT NULL,
              slot_at int8,
              started_at int8 NOT NULL,
              duration_ms int8 NOT NULL,
              status text NOT NULL,
              error text,
              items_found int8 NOT NULL,
              items_new int8 NOT NULL,
              duplicates int8 NOT NULL,
              cursor bytea,
              cursor_changed bool NOT NULL,
              holder text NOT NULL
            );
            CREATE INDEX tick_log_job ON tick_log (job_id, pos);

            CREATE TABLE outbox_item (
              seq bigserial PRIMARY KEY,
              job_id text NOT NULL,
              item_key text NOT NULL,
              envelope text NOT NULL,
              found_at int8 NOT NULL,
              remaining int4 NOT NULL
            );
            CREATE TABLE outbox_pending (
              job_id text NOT NULL,
              sink text NOT NULL,
              seq int8 NOT NULL,
              PRIMARY KEY (job_id, sink, seq)
            );
            CREATE TABLE outbox_lane (
              job_id text NOT NULL,
              sink text NOT NULL,
              pending int8 NOT NULL DEFAULT 0,
              attempts int4 NOT NULL DEFAULT 0,
              next_attempt_at int8 NOT NULL DEFAULT 0,
              last_error text,
              claimed_by text,
              claim_token int8 NOT NULL DEFAULT 0,
              claim_until int8 NOT NULL DEFAULT 0,
              delivered_total int8 NOT NULL DEFAULT 0,
              retried_total int8 NOT NULL DEFAULT 0,
              dead_total int8 NOT NULL DEFAULT 0,
              sink_fp text,
              PRIMARY KEY (job_id, sink)
            ) WITH (fillfactor = 70);
            CREATE TABLE served_sink (
              holder text NOT NULL,
              job_id text NOT NULL,
              sink text NOT NULL,
              fingerprint text NOT NULL,
              PRIMARY KEY (holder, job_id, sink)
            );
            CREATE TABLE dedup_key (
              job_id text NOT NULL,
              item_key text NOT NULL,
              seq int8 NOT NULL,
              PRIMARY KEY (job_id, item_key)
            );
            CREATE INDEX dedup_key_seq ON dedup_key (job_id, seq);
            CREATE TABLE dead_letter (
              id bigserial PRIMARY KEY,
              job_id text NOT NULL,
              sink text NOT NULL,
              item_key text NOT NULL,
              envelope text NOT NULL,
              attempts int4 NOT NULL,
              last_error text NOT NULL,
              found_at int8 NOT NULL,
              failed_at int8 NOT NULL
            );
            CREATE INDEX dead_letter_job ON dead_letter (job_id, id);
            """
        )
    ]
}
