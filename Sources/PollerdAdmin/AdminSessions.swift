import Crypto
import Foundation
public import PollerdCore
import Synchronization

/// A dashboard login: the role of the token it was opened with and its CSRF token.
public struct AdminSession: Sendable, Equatable {
    public var role: AdminRole
    /// Every state-changing request of the session carries this, as the `csrf` form field or the
    /// `X-CSRF-Token` header.
    public var csrf: String
    public var expiresAtMs: Int64
}

/// The dashboard's sessions, in memory (a restart logs everyone out). The cookie holds a random
/// 256-bit id; the table is keyed by its SHA-256, so a lookup's timing says nothing about the ids
/// it holds. Sessions end at `ttlMs` after login, at logout, or when the table is full and they
/// are the oldest.
public final class AdminSessions: Sendable {
    public static let cookieName = "pollerd_session"
    public static let defaultTTLMs: Int64 = 12 * 3_600_000
    public static let defaultCapacity = 10_000

    let clock: any WallClock
    let ttlMs: Int64
    let capacity: Int
    private let table = Mutex<[String: AdminSession]>([:])

    public init(clock: any WallClock, ttlMs: Int64 = defaultTTLMs, capacity: Int = defaultCapacity) {
        self.clock = clock
        self.ttlMs = ttlMs
        self.capacity = max(1, capacity)
    }

    /// Opens a session; returns the cookie value and the session.
    public func open(role: AdminRole) -> (id: String, session: AdminSession) {
        let id = Self.randomToken()
        let now = clock.nowMs
        let session = AdminSession(role: role, csrf: Self.randomToken(), expiresAtMs: now + ttlMs)
        table.withLock { t in
            if t.count >= capacity {
                t = t.filter { $0.value.expiresAtMs > now }
                while t.count >= capacity, let oldest = t.min(by: { $0.value.expiresAtMs < $1.value.expiresAtMs })?.key
                {
                    t[oldest] = nil
                }
            }
            t[Self.key(id)] = session
        }
        return (id, session)
    }

    /// The live session a cookie value names, or nil.
    public func session(_ id: String) -> AdminSession? {
        guard id.utf8.count <= 128 else { return nil }
        let k = Self.key(id)
        let now = clock.nowMs
        return table.withLock { t in
            guard let s = t[k] else { return nil }
            if s.expiresAtMs <= now {
                t[k] = nil
                return nil
            }
            return s
        }
    }

    /// Ends a session (logout).
    public func close(_ id: String) {
        let k = Self.key(id)
        _ = table.withLock { $0.removeValue(forKey: k) }
    }

    public var count: Int { table.withLock { $0.count } }

    static func key(_ id: String) -> String {
        Base64URL.encode(Data(SHA256.hash(data: Array(id.utf8))))
    }

    /// 256 random bits, base64url (the system's CSPRNG: getrandom on Linux).
    static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        return Base64URL.encode(Data((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &g) }))
    }

    /// Two secrets compared in time that depends on their lengths only.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        constantTimeEqual(Array(a.utf8), Array(b.utf8))
    }

    public static func constantTimeEqual(_ x: [UInt8], _ y: [UInt8]) -> Bool {
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
