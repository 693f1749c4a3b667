public import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
public import PollerdCore
import Synchronization

/// POSTs each envelope as JSON, in order, and stops at the first item not acknowledged.
/// 2xx acks; 408, 429, 5xx, timeouts and connection errors retry (honouring `Retry-After`);
/// any other status is final for that item. Redirects are not followed: a webhook URL must
/// name the endpoint itself.
public final class WebhookSink: Sink {
    public let target: WebhookTarget
    private let client: HTTPClient
    /// How long one lane's batch may keep the sink before yielding (the rest waits for the next turn).
    private let batchBudget: Duration

    /// The longest `Retry-After` honoured; longer requests are cut to this.
    static let maxRetryAfterMs: Int64 = 3_600_000
    /// Bytes of a response body kept for the error message.
    static let errorBodyLimit = 512
    /// Bytes of a 2xx body read before the connection is dropped: an ack is its status, and a
    /// receiver that answers with a huge (or endless) body costs no more than this.
    static let ackBodyLimit = 16 << 10

    public init(target: WebhookTarget, client: HTTPClient, batchBudget: Duration = .seconds(30)) {
        self.target = target
        self.client = client
        self.batchBudget = batchBudget
    }

    /// The `X-Pollerd-Signature` value of a body: `sha256=` and the hex HMAC-SHA256 keyed by the secret.
    public static func signature(body: [UInt8], secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Data(secret.utf8)))
        return "sha256=" + Hex.encode(mac)
    }

    public func deliver(_ records: [OutboxRecord], jobID: String) async -> SinkResult {
        let start = ContinuousClock.now
        var acked = 0
        for r in records {
            if acked > 0, ContinuousClock.now - start > batchBudget { break }
            if let failure = await post(r, jobID: jobID) { return SinkResult(acked: acked, failure: failure) }
            acked += 1
        }
        return SinkResult(acked: acked)
    }

    func post(_ r: OutboxRecord, jobID: String) async -> SinkFailure? {
        var req = HTTPClientRequest(url: target.url)
        req.method = .POST
        for (k, v) in target.headers { req.headers.replaceOrAdd(name: k, value: v) }
        req.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
        req.headers.replaceOrAdd(name: "User-Agent", value: "pollerd")
        req.headers.replaceOrAdd(name: "Idempotency-Key", value: r.key)
        req.headers.replaceOrAdd(name: "X-Pollerd-Job", value: jobID)
        let body = Array(r.envelope.utf8)
        if let secret = target.secret {
            req.headers.replaceOrAdd(name: "X-Pollerd-Signature", value: Self.signature(body: body, secret: secret))
        }
        req.body = .bytes(ByteBuffer(bytes: body))
        let host = URLComponents(string: target.url)?.host ?? target.url
        let timeout = target.timeoutSecs
        let client = self.client
        let request = req
        // The status, once the head is in: a 2xx is an ack whatever its body then does.
        let statusSeen = StatusSeen()
        // `timeout_secs` bounds the whole exchange, body included: the request runs in a child
        // task that the deadline cancels (AsyncHTTPClient's own deadline covers the head only).
        let outcome: Result<SinkFailure?, any Error>? = await withTaskGroup(of: Result<SinkFailure?, any Error>?.self) {
            group in
            group.addTask {
                do {
                    let resp = try await client.execute(request, timeout: .seconds(timeout))
                    let status = Int(resp.status.code)
                    statusSeen.value.withLock { $0 = status }
                    let ok = (200..<300).contains(status)
                    // Read at most a little of the body, then stop: leaving the rest unread makes
                    // the client drop the connection instead of downloading it.
                    let limit = ok ? Self.ackBodyLimit : Self.errorBodyLimit
                    var kept = [UInt8]()
                    for try await chunk in resp.body {
                        kept += chunk.readableBytesView.prefix(limit - kept.count)
                        if kept.count >= limit { break }
                    }
                    // The receiver's words go into logs and the CLI: one line, no control characters.
                    let snippet =
                        ok
                        ? ""
                        : String(
                            String(decoding: kept, as: UTF8.self).unicodeScalars.map {
                                $0.properties.generalCategory == .control ? " " : Character($0)
                            }
                        )
                        .trimmingCharacters(in: .whitespaces)
                    return .success(
                        Self.classify(
                            status: status, retryAfter: resp.headers.first(name: "Retry-After"), host: host,
                            body: snippet,
                            nowMs: Int64(Date().timeIntervalSince1970 * 1000)))
                } catch {
                    if let status = statusSeen.value.withLock({ $0 }), (200..<300).contains(status) {
                        return .success(nil)
                    }
                    return .failure(error)
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(timeout))
                return nil // the deadline: whatever is still running is cancelled below
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch outcome {
        case .success(let failure)?:
            return failure
        case nil:
            // The deadline: an answered 2xx whose body never ended is still an ack.
            if let status = statusSeen.value.withLock({ $0 }), (200..<300).contains(status) { return nil }
            return SinkFailure(retryable: true, "webhook \(host): timed out after \(timeout)s")
        case .failure(let e as HTTPClientError)?
        where e == .deadlineExceeded || e == .readTimeout || e == .connectTimeout:
            return SinkFailure(retryable: true, "webhook \(host): timed out after \(timeout)s")
        case .failure(let error)?:
            return SinkFailure(retryable: true, "webhook \(host): \(error)")
        }
    }

    /// The outcome of a response status: nil for an ack.
    static func classify(status: Int, retryAfter: String?, host: String, body: String, nowMs: Int64) -> SinkFailure? {
        if (200..<300).contains(status) { return nil }
        let detail = body.isEmpty ? "" : ": \(body)"
        if status == 408 || status == 429 || (500..<600).contains(status) {
            let after = retryAfter.flatMap { parseRetryAfter($0, nowMs: nowMs) }.map { min($0, maxRetryAfterMs) }
            return SinkFailure(retryable: true, retryAfterMs: after, "webhook \(host): HTTP \(status)\(detail)")
        }
        if (300..<400).contains(status) {
            return SinkFailure(
                retryable: false,
                "webhook \(host): HTTP \(status) redirect not followed; point the url at the endpoint itself")
        }
        return SinkFailure(retryable: false, "webhook \(host): HTTP \(status)\(detail)")
    }

    /// `Retry-After` as delay-seconds or an HTTP-date, in milliseconds from now.
    static func parseRetryAfter(_ value: String, nowMs: Int64) -> Int64? {
        let v = value.trimmingCharacters(in: .whitespaces)
        if let secs = Int64(v) { return secs >= 0 ? secs * 1000 : nil }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let d = f.date(from: v) else { return nil }
        return max(0, Int64(d.timeIntervalSince1970 * 1000) - nowMs)
    }
}

/// The status of a response whose head arrived, shared between the request and its deadline.
private final class StatusSeen: Sendable {
    let value = Mutex<Int?>(nil)
}
