import PollerdCore
import Testing

/// `state_db: postgres://…`: libpq's URL form, refused with a reason when it is wrong, and never
/// shown with its password.
@Suite struct PostgresURLTests {
    @Test func aFullURLIsReadPartByPart() throws {
        let u = try PostgresURL(
            parsing: "postgresql://poller:s%40cret%2F1@db.example:6432/jobs?sslmode=verify-full&application_name=p1")
        #expect(u.user == "poller" && u.password == "s@cret/1")
        #expect(u.host == "db.example" && u.port == 6432 && u.database == "jobs")
        #expect(u.sslMode == .verifyFull && u.applicationName == "p1")
    }

    @Test func defaultsFollowLibpq() throws {
        let u = try PostgresURL(parsing: "postgres://")
        #expect(u.user == "postgres" && u.host == "localhost" && u.port == 5432 && u.database == "postgres")
        #expect(u.sslMode == .prefer && u.password == nil)
        let v = try PostgresURL(parsing: "postgres://app@[::1]:5433")
        #expect(v.host == "::1" && v.port == 5433 && v.database == "app")
        let s = try PostgresURL(parsing: "postgres:///pollerd?host=/run/postgresql")
        #expect(s.socketDirectory == "/run/postgresql" && s.database == "pollerd")
    }

    @Test(arguments: [
        ("postgres://h/db?sslmode=allow", "sslmode=allow is not supported"),
        ("postgres://h/db?sslmode=verify-ca", "sslmode=verify-ca is not supported"),
        ("postgres://h:99999/db", "the port 99999 is not a number from 1 to 65535"),
        ("postgres://h:x/db", "the port x is not a number"),
        ("postgres://h/db?sslmod=require", "the parameter sslmod is not supported"),
        ("postgres://h/db?connect_timeout=0", "connect_timeout=0 is not a number of seconds"),
        ("postgres://h/a/b", "has a '/' in it"),
        ("postgres://[::1/db", "opens '[' and never closes it"),
        ("postgres:///db?host=/tmp&sslmode=require", "cannot be used over a Unix socket"),
        ("mysql://h/db", "starts with postgres://"),
    ])
    func aWrongURLSaysWhatIsWrong(text: String, says: String) {
        #expect(throws: PostgresURL.Invalid.self) { try PostgresURL(parsing: text) }
        do {
            _ = try PostgresURL(parsing: text)
        } catch {
            #expect("\(error)".contains(says), "\(error)")
        }
    }

    @Test func thePasswordIsNeverShown() throws {
        let u = try PostgresURL(parsing: "postgres://app:hunter2@db/jobs?sslmode=require")
        #expect(u.redacted == "postgres://app:***@db:5432/jobs?sslmode=require")
        #expect("\(u)" == u.redacted)
        #expect(!"\(u)".contains("hunter2"))
        // The whole URL, for another process, reads back the same.
        #expect(try PostgresURL(parsing: u.unredacted) == u)
    }

    @Test func onlyPostgresSchemesArePostgres() {
        #expect(PostgresURL.isPostgres("postgres://h/db") && PostgresURL.isPostgres("POSTGRESQL://h/db"))
        #expect(!PostgresURL.isPostgres("/var/lib/pollerd/state.db") && !PostgresURL.isPostgres("state.db"))
    }
}
