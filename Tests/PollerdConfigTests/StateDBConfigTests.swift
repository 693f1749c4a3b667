import PollerdConfig
import PollerdCore
import PollerdPollers
import Testing

/// `state_db`: a SQLite path, or a PostgreSQL URL with its `postgres:` tuning and the
/// `POLLERD_STATE_DB` override, checked as the file loads and never shown with its password.
@Suite struct StateDBConfigTests {
    let now = RFC3339.parse("2026-01-01T00:00:00Z")!

    func load(_ pollers: String, env: [String: String] = [:]) -> JobFile {
        JobFile.parse(
            "pollers:\n" + pollers + "\n  jobs:\n    - { id: a, kind: noop, schedule: { every_secs: 5 }, deliver: [] }",
            path: "/etc/pollerd/pollers.yaml", registry: Builtins.registry(), environment: env, nowMs: now)
    }

    @Test func aPostgresURLIsKeptAndShownWithoutItsPassword() {
        let f = load(
            """
              state_db: postgres://pollerd:${PGPASS}@db.internal/pollerd?sslmode=require
              postgres: { pool_size: 4, statement_timeout_ms: 5000 }
            """, env: ["PGPASS": "hunter2"])
        #expect(f.errors.isEmpty, "\(f.errors)")
        #expect(f.postgresURL?.password == "hunter2" && f.postgresURL?.sslMode == .require)
        #expect(f.stateDBPath == "postgres://pollerd:***@db.internal:5432/pollerd?sslmode=require")
        #expect(f.settings.postgres == PostgresSettings(poolSize: 4, statementTimeoutMs: 5000))
        #expect(f.stateMayExist)
    }

    @Test func aPlainPathStaysSQLite() {
        let f = load("  state_db: ./state/pollerd.db")
        #expect(f.errors.isEmpty && f.postgresURL == nil)
        #expect(f.stateDBPath == "/etc/pollerd/state/pollerd.db")
    }

    @Test func aWrongURLIsALocatedErrorThatShowsNoPassword() {
        let f = load("  state_db: postgres://u:hunter2@db/x?sslmode=allow")
        #expect(f.isFatal)
        #expect(f.errors.count == 1)
        let e = f.errors.first?.description ?? ""
        #expect(e.contains("pollers.yaml:2:") && e.contains("sslmode=allow is not supported"), "\(e)")
        #expect(!e.contains("hunter2"))
    }

    @Test func theEnvironmentOverridesTheKey() {
        let f = load("  state_db: ./state.db", env: ["POLLERD_STATE_DB": "postgres://app@10.0.0.5:6432/jobs"])
        #expect(f.errors.isEmpty, "\(f.errors)")
        #expect(f.postgresURL?.host == "10.0.0.5" && f.postgresURL?.port == 6432)
        let bad = load("  state_db: ./state.db", env: ["POLLERD_STATE_DB": "postgres://h:0/jobs"])
        #expect(bad.errors.first?.description.contains("POLLERD_STATE_DB (which overrides state_db)") == true)
        let path = load("", env: ["POLLERD_STATE_DB": "/srv/state.db"])
        #expect(path.stateDBPath == "/srv/state.db")
    }

    @Test func thePostgresBlockIsChecked() {
        let f = load("  postgres: { pool_size: 0 }")
        #expect(f.errors.first?.description.contains("pool_size") == true, "\(f.errors)")
        let g = load("  postgres: { poolsize: 3 }")
        #expect(g.errors.first?.description.contains("unknown key 'poolsize'") == true, "\(g.errors)")
    }
}
