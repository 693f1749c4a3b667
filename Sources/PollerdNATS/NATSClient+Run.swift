import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

extension NATSClient {
    /// Owns the connection until the client is closed or this task is cancelled: dials, shakes
    /// hands, reconnects (the state machine decides where and when), pings, and expires
    /// deadlines. On return the channel, subscriptions, buffers and waiters are all released.
    public func run() async {
        await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.timers() }
                await self.connectionLoop()
                group.cancelAll()
            }
        } onCancel: {
            self.close()
        }
        let conts: [AsyncStream<NATSMessage>.Continuation] = state.withLock { s in
            s.closed = true
            s.status = .closed
            let c = s.subs.values.compactMap(\.continuation)
            s.subs = [:]
            s.outgoing.clear()
            s.channel = nil
            s.dialing = nil
            return c
        }
        close()
        for c in conts { c.finish() }
    }

    private func connectionLoop() async {
        var action = state.withLock { $0.machine.start() }
        while true {
            switch action {
            case .connect(let server):
                do {
                    let ch = try await handshake(server)
                    try? await ch.closeFuture.get()
                    let (next, reason, closed) = state.withLock { s in
                        if s.channel === ch { s.channel = nil }
                        s.flushScheduled = false
                        if !s.closed { s.status = .disconnected }
                        return (s.machine.connectionLost(), s.lastError ?? "connection lost", s.closed)
                    }
                    action = next
                    if !closed {
                        logger.warning(
                            "NATS connection lost", metadata: ["nats.server": "\(server)", "nats.reason": "\(reason)"])
                        onEvent?(.disconnected(reason: "\(server): \(reason)"))
                    }
                } catch {
                    let message = "\(server): \((error as? NATSError)?.message ?? "\(error)")"
                    let (next, closed) = state.withLock { s in
                        if !s.closed {
                            s.lastError = message
                            s.status = .disconnected
                        }
                        return (s.machine.connectFailed(), s.closed)
                    }
                    action = next
                    if !closed {
                        logger.warning("NATS connection failed", metadata: ["nats.error": "\(message)"])
                        onEvent?(.disconnected(reason: message))
                    }
                }
            case .wait(let d):
                let end = clock.now() + d
                while !state.withLock({ $0.closed }) {
                    let left = end - clock.now()
                    if left <= .zero { break }
                    do { try await clock.sleep(min(left, .milliseconds(50))) } catch { break }
                }
                action = state.withLock { $0.machine.waited() }
            case .stop(let reason):
                let was = state.withLock { s in
                    defer { s.lastError = s.lastError ?? reason }
                    return s.closed
                }
                if !was { logger.error("NATS client stopped", metadata: ["nats.reason": "\(reason)"]) }
                onEvent?(.closed(reason: reason))
                return
            case .none, .sendPing, .closeConnection:
                // Not answers to the events above; stop rather than spin.
                onEvent?(.closed(reason: "closed"))
                return
            }
        }
    }

    /// Dials a server and shakes hands: INFO, TLS when either side wants it, CONNECT and a PING
    /// answered, then every subscription made again and confirmed by a second PING.
    private func handshake(_ server: NATSServerAddress) async throws -> any Channel {
        let loop = group.next()
        let infoPromise = loop.makePromise(of: NATSServerInfo.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(TimeAmount(options.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(NATSChannelHandler(client: self, firstInfo: infoPromise))
                }
            }
        let ch: any Channel
        do {
            ch = try await bootstrap.connect(host: server.host, port: server.port).get()
        } catch {
            infoPromise.fail(error)
            throw NATSError(.connectionFailed, Self.describe(connectError: error))
        }
        let abandoned = state.withLock { s in
            s.dialing = ch
            return s.closed
        }
        if abandoned {
            ch.close(promise: nil)
            throw NATSError(.closed, "the client is closed")
        }
        do {
            // INFO is answered on the event loop as it arrives (TLS, CONNECT, PING), so a
            // daemon whose tasks are busy still answers within the server's auth timeout.
            let timeout = options.connectTimeout
            let pong = loop.makePromise(of: Void.self)
            let hello = infoPromise.futureResult.flatMapThrowing { info in
                try self.sayHello(info, server: server, on: ch, pong: pong, deadline: self.clock.now() + timeout)
            }
            hello.whenFailure { pong.fail($0) }
            let answered = try await withThrowingTaskGroup(of: Bool.self) { g in
                g.addTask {
                    _ = try await hello.get()
                    try await pong.futureResult.get()
                    return true
                }
                g.addTask {
                    try await self.clock.sleep(timeout)
                    ch.close(promise: nil)
                    return false
                }
                let first = try await g.next()!
                g.cancelAll()
                return first
            }
            guard answered else { throw NATSError(.timeout, "no answer to CONNECT within \(timeout)") }
            // Every subscription again, with its queue group and what is left of its maximum,
            // ahead of the publishes held while disconnected.
            let flushOn: (any Channel)? = state.withLock { s in
                var head = ch.allocator.buffer(capacity: 256 + s.outgoing.readableBytes)
                for (sid, sub) in s.subs.sorted(by: { $0.key < $1.key }) {
                    NATSCommand.subscribe(subject: sub.subject, queue: sub.queue, sid: sid, into: &head)
                    if let max = sub.max { NATSCommand.unsubscribe(sid: sid, max: max - sub.received, into: &head) }
                }
                head.writeBuffer(&s.outgoing)
                s.outgoing = head
                s.channel = ch
                s.dialing = nil
                s.flushScheduled = false
                return Self.claimFlush(&s, ch)
            }
            if let flushOn { scheduleFlush(flushOn) }
            try await flush(timeout: timeout)
            let (name, waiters) = state.withLock { s in
                s.machine.connected()
                s.status = .connected
                s.lastError = nil
                defer { s.connectedWaiters = [] }
                return (s.info?.serverName ?? "", s.connectedWaiters)
            }
            for w in waiters { w.resume() }
            logger.info("NATS connected", metadata: ["nats.server": "\(server)", "nats.server_name": "\(name)"])
            onEvent?(.connected(server: "\(server)", serverName: name))
            return ch
        } catch {
            let serverError: String? = state.withLock { s in
                if s.channel === ch { s.channel = nil }
                s.dialing = nil
                return s.lastError.flatMap { $0.hasPrefix("-ERR") ? $0 : nil }
            }
            ch.close(promise: nil)
            if let serverError {
                let auth = NATSServerError(String(serverError.dropFirst(6).dropLast())).isAuthorization
                throw NATSError(auth ? .authorization : .serverError, serverError)
            }
            throw error
        }
    }

    /// On the event loop, with the first INFO: TLS when either side wants it, then CONNECT and
    /// a PING whose PONG completes `pong`. Anything refused throws before the PING is waited on.
    private func sayHello(
        _ info: NATSServerInfo, server: NATSServerAddress, on ch: any Channel, pong: EventLoopPromise<Void>,
        deadline: Duration
    ) throws -> NATSServerInfo {
        let wantTLS = server.tls || options.tls != nil || info.tlsRequired
        if wantTLS {
            guard info.tlsRequired || info.tlsAvailable else {
                throw NATSError(.tls, "TLS is asked for but the server does not offer it")
            }
            guard let ctx = sslContext else { throw NATSError(.tls, "no TLS context") }
            let hostname = Self.isIPAddress(server.host) ? nil : server.host
            let tls = try NIOSSLClientHandler(context: ctx, serverHostname: hostname)
            try ch.pipeline.syncOperations.addHandler(tls, position: .first)
        }
        if info.nonce != nil, info.authRequired, server.user == nil, server.token == nil {
            throw NATSError(.authorization, "the server wants a signed nonce (NKeys), which this client does not do")
        }
        let leftover: [PongWaiter] = state.withLock { s in
            s.info = info
            // A lame duck server met while connecting is used until it closes.
            _ = s.machine.infoReceived(info)
            // Waits left from the last connection belong to it: they fail, never linger.
            let left = s.pongs.compactMap { $0 }
            s.pongs.removeAll()
            s.nextWaiterID += 1
            s.pongs.append(PongWaiter(id: s.nextWaiterID, deadline: deadline, promise: pong))
            return left
        }
        for w in leftover { w.fail(NATSError(.connectionFailed, "connection lost")) }
        var hello = ch.allocator.buffer(capacity: 512)
        NATSCommand.connect(
            NATSCommand.Connect(
                tlsRequired: wantTLS, user: server.user, pass: server.password, authToken: server.token,
                name: options.name, version: options.version),
            into: &hello)
        NATSCommand.ping(into: &hello)
        ch.writeAndFlush(hello, promise: nil)
        return info
    }

    /// Pings on the interval, judges staleness, and expires deadlines.
    private func timers() async {
        var sincePing = Duration.zero
        while !Task.isCancelled {
            do { try await clock.sleep(options.timerResolution) } catch { return }
            expireDeadlines()
            sincePing += options.timerResolution
            guard sincePing >= options.pingInterval else { continue }
            sincePing = .zero
            enum Do {
                case flush(any Channel)
                case close(any Channel)
                case nothing
            }
            let what: Do = state.withLock { s in
                guard let ch = s.channel else { return .nothing }
                switch s.machine.pingDue() {
                case .sendPing:
                    s.pongs.append(nil)
                    NATSCommand.ping(into: &s.outgoing)
                    return Self.claimFlush(&s, ch).map { .flush($0) } ?? .nothing
                case .closeConnection(let reason):
                    s.lastError = reason
                    return .close(ch)
                default: return .nothing
                }
            }
            switch what {
            case .flush(let ch): scheduleFlush(ch)
            case .close(let ch): ch.close(promise: nil)
            case .nothing: break
            }
        }
    }

    /// "connection refused", "timed out": the reason a dial failed, without NIO's wrapping.
    static func describe(connectError error: any Error) -> String {
        var e: any Error = error
        if let c = error as? NIOConnectionError, let first = c.connectionErrors.first?.error { e = first }
        if let io = e as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
        if e is ChannelError, case .connectTimeout = e as? ChannelError { return "timed out" }
        return "\(e)"
    }

    func recordError(_ text: String) {
        state.withLock { $0.lastError = text }
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// Runs a client for the length of `body`: it connects in the background (`waitUntilConnected`
/// to wait), and is closed and freed when `body` returns or throws.
public func withNATSClient<R: Sendable>(
    _ client: NATSClient, _ body: (NATSClient) async throws -> R
) async throws -> R {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        do {
            let r = try await body(client)
            client.close()
            try await group.waitForAll()
            return r
        } catch {
            client.close()
            try? await group.waitForAll()
            throw error
        }
    }
}
