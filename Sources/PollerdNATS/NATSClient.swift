import Foundation
public import Logging
public import NIOCore
public import NIOPosix
import NIOSSL
import Synchronization

/// A NATS client on SwiftNIO: publish (with headers), subscribe (with queue groups and
/// auto-unsubscribe), request/reply over one wildcard inbox, flush and drain, and reconnection
/// across the configured and announced servers.
///
/// `run()` owns the connection: it dials, reconnects and returns when the client is closed or
/// its task is cancelled, freeing the channel, the subscriptions and the buffers. Calls made
/// while it runs are safe from any task. `withNATSClient` scopes a client to a closure.
public final class NATSClient: Sendable {
    public let options: NATSClientOptions
    let group: any EventLoopGroup
    let clock: NATSClock
    let logger: Logger
    let onEvent: (@Sendable (NATSEvent) -> Void)?
    let sslContext: NIOSSLContext?
    /// `_INBOX.<random>.`: every reply subject starts with it.
    let inbox: String
    let state: Mutex<Shared>
    /// The last request's token (its reply subject's last token).
    let tokens = Atomic<UInt64>(0)

    /// Everything the client shares between the caller's tasks and the event loop.
    struct Shared {
        var machine: NATSConnectionStateMachine
        /// The live connection's channel, set once the handshake is done.
        var channel: (any Channel)?
        var status: Status = .connecting
        var info: NATSServerInfo?
        var lastError: String?
        /// Bytes to write, in order; while disconnected, the reconnect buffer.
        var outgoing: ByteBuffer
        var flushScheduled = false
        /// Bytes handed to the channel and not written yet.
        var writing = 0
        var writeWaiters: [CheckedContinuation<Void, any Error>] = []
        var subs: [UInt64: Subscription] = [:]
        var nextSid: UInt64 = 1
        var inboxSid: UInt64 = 0
        var pongs = CircularBuffer<PongWaiter?>()
        var nextWaiterID: UInt64 = 0
        var requests: [UInt64: Request] = [:]
        /// Callers of `waitUntilConnected`.
        var connectedWaiters: [PongWaiter] = []
        /// The channel being dialed, before its handshake is done.
        var dialing: (any Channel)?
        var closed = false
    }

    /// Whether calls can go out now.
    public enum Status: Sendable, Equatable {
        case connecting
        case connected
        case disconnected
        case closed
    }

    struct Subscription {
        var subject: String
        var queue: String?
        var max: Int?
        var received = 0
        var dropped = 0
        var continuation: AsyncStream<NATSMessage>.Continuation?
    }

    /// Someone waiting for an answer (a PONG, the connection): a task, or the handshake's
    /// promise on the event loop. Whoever removes it from the state completes it, once.
    struct PongWaiter {
        enum Waiter {
            case task(CheckedContinuation<Void, any Error>)
            case promise(EventLoopPromise<Void>)
        }
        var id: UInt64
        var deadline: Duration
        var waiter: Waiter

        init(id: UInt64, deadline: Duration, continuation: CheckedContinuation<Void, any Error>) {
            self.id = id
            self.deadline = deadline
            self.waiter = .task(continuation)
        }

        init(id: UInt64, deadline: Duration, promise: EventLoopPromise<Void>) {
            self.id = id
            self.deadline = deadline
            self.waiter = .promise(promise)
        }

        func resume() {
            switch waiter {
            case .task(let c): c.resume()
            case .promise(let p): p.succeed(())
            }
        }

        func fail(_ error: any Error) {
            switch waiter {
            case .task(let c): c.resume(throwing: error)
            case .promise(let p): p.fail(error)
            }
        }
    }

    enum Request {
        case waiting(CheckedContinuation<NATSMessage, any Error>, deadline: Duration)
        case cancelled
    }

    /// - Parameters:
    ///   - group: the event loops (default: NIO's shared group).
    ///   - clock: the clock of deadlines, pings and reconnect waits (tests inject a manual one).
    ///   - onEvent: called on connection changes (from the event loop: keep it short).
    public init<C: Clock<Duration> & Sendable>(
        options: NATSClientOptions, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        clock: C = ContinuousClock(), logger: Logger = Logger(label: "nats"),
        onEvent: (@Sendable (NATSEvent) -> Void)? = nil
    ) throws(NATSError) {
        guard !options.servers.isEmpty else { throw NATSError(.invalidArgument, "no server") }
        self.options = options
        self.group = group
        self.clock = NATSClock(clock)
        self.logger = logger
        self.onEvent = onEvent
        let needsTLS = options.tls != nil || options.servers.contains { $0.tls }
        do {
            sslContext = try NIOSSLContext(configuration: options.tls ?? .makeClientConfiguration())
        } catch {
            if needsTLS { throw NATSError(.tls, "TLS settings: \(error)") }
            sslContext = nil
        }
        var random = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        let nuid = String((0..<22).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
        inbox = "\(options.inboxPrefix).\(nuid)."
        var servers = options.servers
        for i in servers.indices where servers[i].user == nil && servers[i].token == nil {
            servers[i].user = options.user
            servers[i].password = options.password
            servers[i].token = options.token
        }
        state = Mutex(
            Shared(
                machine: NATSConnectionStateMachine(
                    servers: servers, settings: options.reconnect, seed: random.next()),
                outgoing: ByteBufferAllocator().buffer(capacity: 4096)))
        state.withLock { s in
            s.inboxSid = s.nextSid
            s.nextSid += 1
            s.subs[s.inboxSid] = Subscription(subject: inbox + "*", queue: nil, max: nil, continuation: nil)
        }
    }

    // MARK: - What callers see

    /// Where the connection is.
    public var status: Status { state.withLock { $0.status } }
    /// Whether the connection is up.
    public var isConnected: Bool { state.withLock { $0.status == .connected } }
    /// The last INFO of the connected server.
    public var serverInfo: NATSServerInfo? { state.withLock { $0.info } }
    /// Why the last connection or dial failed.
    public var lastError: String? { state.withLock { $0.lastError } }
    /// The servers known: configured, then announced.
    public var servers: [NATSServerAddress] { state.withLock { $0.machine.servers } }

    /// Waits until the client is connected; throws on timeout or when it closes.
    public func waitUntilConnected(timeout: Duration) async throws {
        let deadline = clock.now() + timeout
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let now: Result<Void, NATSError>? = state.withLock { s in
                switch s.status {
                case .connected: return .success(())
                case .closed: return .failure(NATSError(.closed, "the client is closed"))
                default:
                    s.nextWaiterID += 1
                    s.connectedWaiters.append(PongWaiter(id: s.nextWaiterID, deadline: deadline, continuation: c))
                    return nil
                }
            }
            if let now { c.resume(with: now) }
        }
    }

    /// Publishes a message. While the socket is behind it waits for room; while disconnected
    /// the message is held in the reconnect buffer, and past its bound this throws.
    public func publish(
        _ subject: String, payload: some Collection<UInt8> & Sendable, headers: NATSHeaders? = nil,
        replyTo: String? = nil
    ) async throws {
        let headerBytes = headers?.encoded
        try check(subject: subject)
        let size = payload.count + (headerBytes?.count ?? 0)
        while true {
            let next: SendOutcome = try state.withLock { s throws(NATSError) in
                if s.closed { throw NATSError(.closed, "the client is closed") }
                try Self.check(size: size, against: s.info)
                if let ch = s.channel {
                    if s.outgoing.readableBytes + s.writing > options.maxPendingBytes { return .wait }
                    NATSCommand.publish(
                        subject: subject, replyTo: replyTo, headers: headerBytes, payload: payload, into: &s.outgoing)
                    return .sent(Self.claimFlush(&s, ch))
                }
                if s.outgoing.readableBytes + size + subject.utf8.count + 32 > options.reconnectBufferBytes {
                    throw NATSError(
                        .reconnectBufferFull,
                        "not connected (\(s.lastError ?? "connecting")) and the reconnect buffer's \(options.reconnectBufferBytes) bytes are full"
                    )
                }
                NATSCommand.publish(
                    subject: subject, replyTo: replyTo, headers: headerBytes, payload: payload, into: &s.outgoing)
                return .sent(nil)
            }
            switch next {
            case .sent(let ch):
                if let ch { scheduleFlush(ch) }
                return
            case .failed(let e): throw e
            case .wait:
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                    let now: Bool = state.withLock { s in
                        if s.closed || s.channel == nil
                            || s.outgoing.readableBytes + s.writing <= options.maxPendingBytes
                        {
                            return true
                        }
                        s.writeWaiters.append(c)
                        return false
                    }
                    if now { c.resume() }
                }
            }
        }
    }

    /// Sends a request and waits for its reply. A `503` status (no responders) throws at once;
    /// cancelling the caller's task abandons the request. Requests are not buffered while
    /// disconnected: they throw `.notConnected`.
    public func request(
        _ subject: String, payload: some Collection<UInt8> & Sendable, headers: NATSHeaders? = nil,
        timeout: Duration? = nil
    ) async throws -> NATSMessage {
        let headerBytes = headers?.encoded
        try check(subject: subject)
        let size = payload.count + (headerBytes?.count ?? 0)
        let token = tokens.add(1, ordering: .relaxed).newValue
        let deadline = clock.now() + (timeout ?? options.requestTimeout)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<NATSMessage, any Error>) in
                let outcome: SendOutcome = state.withLock { s in
                    if case .cancelled = s.requests[token] {
                        s.requests[token] = nil
                        return .failed(CancellationError())
                    }
                    if s.closed { return .failed(NATSError(.closed, "the client is closed")) }
                    guard let ch = s.channel else {
                        return .failed(NATSError(.notConnected, "not connected: \(s.lastError ?? "connecting")"))
                    }
                    do { try Self.check(size: size, against: s.info) } catch { return .failed(error) }
                    s.requests[token] = .waiting(c, deadline: deadline)
                    NATSCommand.publish(
                        subject: subject, replyTo: inbox + String(token), headers: headerBytes, payload: payload,
                        into: &s.outgoing)
                    return .sent(Self.claimFlush(&s, ch))
                }
                switch outcome {
                case .sent(let ch): if let ch { scheduleFlush(ch) }
                case .failed(let e): c.resume(throwing: e)
                case .wait: break
                }
            }
        } onCancel: {
            let c: CheckedContinuation<NATSMessage, any Error>? = state.withLock { s in
                switch s.requests[token] {
                case .waiting(let c, _)?:
                    s.requests[token] = nil
                    return c
                case .cancelled?: return nil
                case nil:
                    s.requests[token] = .cancelled
                    return nil
                }
            }
            c?.resume(throwing: CancellationError())
        }
    }

    /// Waits until the server has processed everything sent before it (a PING answered).
    public func flush(timeout: Duration? = nil) async throws {
        let deadline = clock.now() + (timeout ?? options.requestTimeout)
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            let result: Result<(any Channel)?, NATSError> = state.withLock { s in
                if s.closed { return .failure(NATSError(.closed, "the client is closed")) }
                guard let ch = s.channel else {
                    return .failure(NATSError(.notConnected, "not connected: \(s.lastError ?? "connecting")"))
                }
                s.nextWaiterID += 1
                s.pongs.append(PongWaiter(id: s.nextWaiterID, deadline: deadline, continuation: c))
                NATSCommand.ping(into: &s.outgoing)
                return .success(Self.claimFlush(&s, ch))
            }
            switch result {
            case .success(let ch): if let ch { scheduleFlush(ch) }
            case .failure(let e): c.resume(throwing: e)
            }
        }
    }

    /// Subscribes to a subject (wildcards allowed), in a queue group if named. With `max`, the
    /// server stops after that many messages and the subscription ends.
    public func subscribe(to subject: String, queue: String? = nil, max: Int? = nil) throws -> NATSSubscription {
        if let p = NATSCommand.subjectProblem(subject, publishing: false) {
            throw NATSError(.invalidArgument, "subject '\(subject)' \(p)")
        }
        if let queue, let p = NATSCommand.subjectProblem(queue, publishing: false) {
            throw NATSError(.invalidArgument, "queue group '\(queue)' \(p)")
        }
        if let max, max <= 0 { throw NATSError(.invalidArgument, "max must be positive") }
        let (stream, cont) = AsyncStream<NATSMessage>.makeStream(
            bufferingPolicy: .bufferingOldest(options.subscriptionCapacity))
        let (sid, ch): (UInt64, (any Channel)?) = try state.withLock { s throws(NATSError) in
            if s.closed { throw NATSError(.closed, "the client is closed") }
            let sid = s.nextSid
            s.nextSid += 1
            s.subs[sid] = Subscription(subject: subject, queue: queue, max: max, continuation: cont)
            guard let ch = s.channel else { return (sid, nil) }
            NATSCommand.subscribe(subject: subject, queue: queue, sid: sid, into: &s.outgoing)
            if let max { NATSCommand.unsubscribe(sid: sid, max: max, into: &s.outgoing) }
            return (sid, Self.claimFlush(&s, ch))
        }
        if let ch { scheduleFlush(ch) }
        cont.onTermination = { [weak self] _ in self?.unsubscribe(sid: sid) }
        return NATSSubscription(sid: sid, subject: subject, stream: stream, client: self)
    }

    /// Ends a subscription (the server is told; its stream finishes).
    func unsubscribe(sid: UInt64) {
        let (cont, ch): (AsyncStream<NATSMessage>.Continuation?, (any Channel)?) = state.withLock { s in
            guard let sub = s.subs.removeValue(forKey: sid) else { return (nil, nil) }
            guard let ch = s.channel else { return (sub.continuation, nil) }
            NATSCommand.unsubscribe(sid: sid, max: nil, into: &s.outgoing)
            return (sub.continuation, Self.claimFlush(&s, ch))
        }
        if let ch { scheduleFlush(ch) }
        cont?.finish()
    }

    /// Unsubscribes everything, lets the messages already sent reach their consumers, waits for
    /// the requests in flight, flushes the publishes, then closes.
    public func drain(timeout: Duration = .seconds(5)) async {
        let deadline = clock.now() + timeout
        // UNSUB now, but the subscriptions stay in the table until the PING after them is
        // answered: the messages the server sent before it still reach their consumers.
        let (sids, ch): ([UInt64], (any Channel)?) = state.withLock { s in
            let sids = s.subs.keys.filter { $0 != s.inboxSid }.sorted()
            guard let ch = s.channel else { return (sids, nil) }
            for sid in sids { NATSCommand.unsubscribe(sid: sid, max: nil, into: &s.outgoing) }
            return (sids, Self.claimFlush(&s, ch))
        }
        if let ch { scheduleFlush(ch) }
        try? await flush(timeout: timeout)
        let conts = state.withLock { s in sids.compactMap { s.subs.removeValue(forKey: $0)?.continuation } }
        for c in conts { c.finish() }
        while clock.now() < deadline, state.withLock({ !$0.requests.isEmpty && $0.channel != nil }) {
            try? await clock.sleep(options.timerResolution)
        }
        try? await flush(timeout: max(.milliseconds(1), deadline - clock.now()))
        close()
    }

    /// Closes the client: the connection ends and `run()` returns. Waiting calls throw `.closed`.
    public func close() {
        let channels: [any Channel] = state.withLock { s in
            s.closed = true
            _ = s.machine.close()
            return [s.channel, s.dialing].compactMap { $0 }
        }
        for ch in channels { ch.close(promise: nil) }
        failWaiters(NATSError(.closed, "the client is closed"), requests: true)
    }

    // MARK: - Checks

    private func check(subject: String) throws(NATSError) {
        if subject.isEmpty || subject.utf8.count > NATSCommand.maxSubjectBytes
            || subject.utf8.contains(where: { $0 <= 32 || $0 == 127 })
        {
            throw NATSError(
                .invalidArgument,
                "subject '\(subject.prefix(64))' is empty, longer than \(NATSCommand.maxSubjectBytes) bytes, or holds a space or a control byte"
            )
        }
    }

    /// Every payload is checked against the server's `max_payload` before it is sent.
    private static func check(size: Int, against info: NATSServerInfo?) throws(NATSError) {
        if let maxPayload = info?.maxPayload, size > maxPayload {
            throw NATSError(.payloadTooLarge, "\(size) bytes is more than the server's max_payload of \(maxPayload)")
        }
    }

    // MARK: - Writes

    /// Takes the duty of scheduling the flush, when nobody has it yet.
    static func claimFlush(_ s: inout Shared, _ ch: any Channel) -> (any Channel)? {
        if s.flushScheduled { return nil }
        s.flushScheduled = true
        return ch
    }

    /// Writes what is buffered, on the channel's event loop, in one write.
    func scheduleFlush(_ ch: any Channel) {
        if ch.eventLoop.inEventLoop {
            flushOutgoing(ch)
        } else {
            ch.eventLoop.execute { self.flushOutgoing(ch) }
        }
    }

    private func flushOutgoing(_ ch: any Channel) {
        let buffer: ByteBuffer? = state.withLock { s in
            s.flushScheduled = false
            guard let current = s.channel, current === ch, s.outgoing.readableBytes > 0 else { return nil }
            let b = s.outgoing
            s.outgoing = ch.allocator.buffer(capacity: Swift.max(4096, Swift.min(b.readableBytes, 1 << 20)))
            s.writing += b.readableBytes
            return b
        }
        guard let buffer else { return }
        let n = buffer.readableBytes
        ch.writeAndFlush(buffer).whenComplete { _ in
            let waiters: [CheckedContinuation<Void, any Error>] = self.state.withLock { s in
                s.writing -= n
                guard !s.writeWaiters.isEmpty, s.outgoing.readableBytes + s.writing <= self.options.maxPendingBytes / 2
                else { return [] }
                defer { s.writeWaiters = [] }
                return s.writeWaiters
            }
            for w in waiters { w.resume() }
        }
    }

    // MARK: - Reads (on the event loop)

    func received(_ op: NATSServerOp, on ch: any Channel) {
        switch op {
        case .msg(let m): deliver(m)
        case .pong:
            let waiter: PongWaiter?? = state.withLock { s in
                s.machine.pongReceived()
                return s.pongs.popFirst()
            }
            waiter??.resume()
        case .info(let info):
            let action = state.withLock { s in
                s.info = info
                return s.machine.infoReceived(info)
            }
            if info.lameDuckMode {
                logger.info("NATS server in lame duck mode", metadata: ["nats.server": "\(info.serverName)"])
                onEvent?(.lameDuck(server: info.serverName))
            }
            if case .closeConnection = action { ch.close(promise: nil) }
        case .err(let e):
            state.withLock { $0.lastError = "-ERR '\(e.text)'" }
            if let subject = e.refusedSubscription {
                let conts: [AsyncStream<NATSMessage>.Continuation] = state.withLock { s in
                    let sids = s.subs.filter { $0.value.subject == subject && $0.key != s.inboxSid }.map(\.key)
                    return sids.compactMap { s.subs.removeValue(forKey: $0)?.continuation }
                }
                for c in conts { c.finish() }
            }
            if !e.closesConnection { onEvent?(.serverError(e.text)) }
            logger.warning("NATS server error", metadata: ["nats.error": "\(e.text)"])
        case .ping, .ok: break
        }
    }

    private func deliver(_ m: NATSMessage) {
        enum Route {
            case reply(CheckedContinuation<NATSMessage, any Error>)
            case sub(AsyncStream<NATSMessage>.Continuation, last: Bool)
            case none
        }
        let route: Route = state.withLock { s in
            if m.sid == s.inboxSid {
                guard m.subject.hasPrefix(inbox), let token = UInt64(m.subject.dropFirst(inbox.count)),
                    case .waiting(let c, _)? = s.requests.removeValue(forKey: token)
                else { return .none }
                return .reply(c)
            }
            guard var sub = s.subs[m.sid], let c = sub.continuation else { return .none }
            sub.received += 1
            let last = sub.max.map { sub.received >= $0 } ?? false
            s.subs[m.sid] = last ? nil : sub
            return .sub(c, last: last)
        }
        switch route {
        case .reply(let c):
            if m.status == 503 {
                c.resume(throwing: NATSError(.noResponders, "no responders on the subject"))
            } else {
                c.resume(returning: m)
            }
        case .sub(let c, let last):
            if case .dropped = c.yield(m) {
                let (dropped, subject): (Int, String) = state.withLock { s in
                    s.subs[m.sid]?.dropped += 1
                    return (s.subs[m.sid]?.dropped ?? 1, s.subs[m.sid]?.subject ?? m.subject)
                }
                if dropped == 1 || dropped % 10_000 == 0 {
                    logger.warning(
                        "NATS slow consumer: messages dropped",
                        metadata: ["nats.subject": "\(subject)", "nats.dropped": "\(dropped)"])
                    onEvent?(.slowConsumer(subject: subject, dropped: dropped))
                }
            }
            if last { c.finish() }
        case .none: break
        }
    }

    /// A connection's channel closed: it takes no more writes, and the waits tied to it fail.
    func channelClosed(_ ch: any Channel) {
        state.withLock { s in
            if let current = s.channel, current === ch {
                s.channel = nil
                s.flushScheduled = false
                // Not connected from this moment: a caller waiting for the connection waits
                // for the next one, not for the run loop to notice this one ended.
                if !s.closed { s.status = .disconnected }
            }
        }
        failWaiters(NATSError(.connectionFailed, "connection lost"), requests: false)
    }

    private func failWaiters(_ error: NATSError, requests: Bool) {
        let (pongs, writers, reqs): ([PongWaiter], [CheckedContinuation<Void, any Error>], [Request]) =
            state.withLock { s in
                var p = s.pongs.compactMap { $0 }
                s.pongs.removeAll()
                let w = s.writeWaiters
                s.writeWaiters = []
                var r: [Request] = []
                if s.closed {
                    p.append(contentsOf: s.connectedWaiters)
                    s.connectedWaiters = []
                }
                if requests {
                    r = Array(s.requests.values)
                    s.requests = [:]
                }
                return (p, w, r)
            }
        for p in pongs { p.fail(error) }
        for w in writers { w.resume() }
        for case .waiting(let c, _) in reqs { c.resume(throwing: error) }
    }

    // MARK: - Timers

    /// Fails the requests and flushes past their deadline.
    func expireDeadlines() {
        let now = clock.now()
        let (reqs, pongs): ([CheckedContinuation<NATSMessage, any Error>], [PongWaiter]) = state.withLock { s in
            var r: [CheckedContinuation<NATSMessage, any Error>] = []
            for (token, entry) in s.requests {
                if case .waiting(let c, let d) = entry, d <= now {
                    s.requests[token] = nil
                    r.append(c)
                }
            }
            var p: [PongWaiter] = []
            for i in s.pongs.indices {
                if let w = s.pongs[i], w.deadline <= now {
                    p.append(w)
                    s.pongs[i] = nil
                }
            }
            for w in s.connectedWaiters where w.deadline <= now { p.append(w) }
            s.connectedWaiters.removeAll { $0.deadline <= now }
            return (r, p)
        }
        for c in reqs { c.resume(throwing: NATSError(.timeout, "no reply in time")) }
        for p in pongs { p.fail(NATSError(.timeout, "no answer in time")) }
    }
}

/// What a send under the lock came to: written (with the channel to flush, when this call
/// must schedule it), wait for the socket, or failed.
private enum SendOutcome {
    case sent((any Channel)?)
    case wait
    case failed(any Error)
}

/// A subscription's messages, as an async sequence. It ends when the subscription does
/// (`unsubscribe()`, its `max`, a refused subscription, a drain, the client closing).
public struct NATSSubscription: AsyncSequence, Sendable {
    public typealias Element = NATSMessage
    public let sid: UInt64
    public let subject: String
    let stream: AsyncStream<NATSMessage>
    let client: NATSClient

    public func makeAsyncIterator() -> AsyncStream<NATSMessage>.Iterator { stream.makeAsyncIterator() }

    /// Ends the subscription.
    public func unsubscribe() { client.unsubscribe(sid: sid) }
}
