import Foundation

/// Where a job's items go.
public enum SinkTarget: Sendable, Hashable {
    /// Publish to a broker subject (the in-process broker until NATS is configured).
    case nats(subject: String)
    /// POST each item as JSON to a URL.
    case webhook(WebhookTarget)
    /// Append JSON lines to a file, fsynced before the ack.
    case file(path: String)
    /// Write JSON lines to the daemon's standard output.
    case stdout

    /// The sink type, as metrics label it.
    public var type: String {
        switch self {
        case .nats: "nats"
        case .webhook: "webhook"
        case .file: "file"
        case .stdout: "stdout"
        }
    }
}

/// A webhook sink's settings.
public struct WebhookTarget: Sendable, Hashable {
    public var url: String
    public var headers: [String: String]
    /// Keys the `X-Pollerd-Signature` HMAC-SHA256 of the body; nil sends no signature.
    public var secret: String?
    public var timeoutSecs: Int64

    public init(url: String, headers: [String: String] = [:], secret: String? = nil, timeoutSecs: Int64 = 10) {
        self.url = url
        self.headers = headers
        self.secret = secret
        self.timeoutSecs = timeoutSecs
    }
}

/// One configured sink of a job. `name` identifies the sink's queue in the outbox, so it must
/// stay the same across restarts for undelivered items to find their sink again.
public struct SinkSpec: Sendable, Hashable {
    public var name: String
    public var target: SinkTarget

    public init(name: String, target: SinkTarget) {
        self.name = name
        self.target = target
    }

    /// A sink with its default name: the type and where it points (a webhook's URL without
    /// query or credentials, so secrets in it do not reach the state database or the CLI).
    public init(_ target: SinkTarget) {
        self.init(name: Self.defaultName(target), target: target)
    }

    public static func defaultName(_ target: SinkTarget) -> String {
        switch target {
        case .nats(let subject): return "nats:\(subject)"
        case .file(let path): return "file:\(path)"
        case .stdout: return "stdout"
        case .webhook(let w):
            var u = w.url
            if let q = u.firstIndex(where: { $0 == "?" || $0 == "#" }) { u = String(u[..<q]) }
            if let scheme = u.range(of: "://"), let at = u[scheme.upperBound...].firstIndex(of: "@"),
                !u[scheme.upperBound..<at].contains("/")
            {
                u = String(u[..<scheme.upperBound]) + String(u[u.index(after: at)...])
            }
            return "webhook:\(u)"
        }
    }
}

/// How the outbox behaves (the `delivery:` section of the job file).
public struct DeliveryTuning: Sendable, Hashable {
    /// Attempts per item and sink before it goes to the dead-letter table.
    public var maxAttempts = 10
    /// Undelivered items per job above which its ticks pause until the backlog drains.
    public var maxBacklog: Int64 = 10_000
    /// Item keys each job remembers, so an item a source returns again is not delivered twice
    /// (0 turns the check off).
    public var dedupWindow = 1000
    /// Sink queues (job × sink) delivered at the same time.
    public var concurrency = 16
    /// Items handed to a sink in one go (one fsync for a file sink).
    public var batchSize = 256
    /// First retry delay; it doubles per attempt up to `retryMaxMs` (±10 % jitter).
    public var retryBaseMs: Int64 = 1000
    public var retryMaxMs: Int64 = 300_000

    public init() {}

    /// The delay before attempt `attempt + 1` after `attempt` failures, with a jitter drawn from `unit` in [0, 1).
    public func retryDelayMs(afterAttempts attempts: Int, unit: Double) -> Int64 {
        let exp = min(max(attempts - 1, 0), 30)
        let base = min(Double(retryMaxMs), Double(retryBaseMs) * pow2(exp))
        let jittered = base * (0.9 + 0.2 * min(max(unit, 0), 1))
        return max(1, Int64(jittered))
    }

    private func pow2(_ n: Int) -> Double {
        var v = 1.0
        for _ in 0..<n { v *= 2 }
        return v
    }
}

extension SinkSpec {
    /// A stable text of the whole sink definition, for job fingerprints (secrets hashed).
    public var fingerprint: String {
        let detail: String
        switch target {
        case .nats(let s): detail = s
        case .file(let p): detail = p
        case .stdout: detail = ""
        case .webhook(let w):
            let headers = w.headers.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
            detail =
                "\(w.url)|\(headers)|\(w.secret.map { String(StableHash.fnv1a($0), radix: 16) } ?? "-")|\(w.timeoutSecs)"
        }
        return "\(name)=\(target.type)(\(detail))"
    }
}

/// A `HOST:PORT` to listen on (`admin_listen`); IPv6 hosts in brackets.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
