import PollerdNATS
import Testing

/// The connection's decisions with no socket and no time: rotation, backoff with jitter, giving
/// up, staleness, lame duck mode, and servers a cluster announces.
@Suite struct NATSConnectionStateMachineTests {
    let a = NATSServerAddress(host: "a", port: 4222, user: "u", password: "p")
    let b = NATSServerAddress(host: "b", port: 4222)

    @Test func rotatesThroughServersThenWaitsWithGrowingJitteredBackoff() {
        var settings = NATSConnectionStateMachine.Settings()
        settings.reconnectWait = .milliseconds(100)
        settings.maxReconnectWait = .milliseconds(1000)
        settings.jitter = 0.2
        var m = NATSConnectionStateMachine(servers: [a, b], settings: settings, seed: 42)
        #expect(m.start() == .connect(a))
        // A dead server hands over to the next at once; the wait comes after a full round.
        #expect(m.connectFailed() == .wait(.zero))
        #expect(m.waited() == .connect(b))
        var waits: [Duration] = []
        for _ in 0..<12 {
            let w = m.connectFailed()
            guard case .wait(let d) = w else {
                Issue.record("expected a wait, got \(w)")
                return
            }
            if d > .zero { waits.append(d) }
            _ = m.waited()
        }
        #expect(waits.count == 6)
        // 100, 200, 400, 800, then capped at 1000: each within ±20 %.
        let bases: [Double] = [100, 200, 400, 800, 1000, 1000]
        for (w, base) in zip(waits, bases) {
            let ms = Double(w.components.seconds) * 1000 + Double(w.components.attoseconds) / 1e15
            #expect(ms >= base * 0.8 && ms <= base * 1.2, "wait \(ms) ms for base \(base)")
        }
        // Jitter spreads clients: two seeds give different waits.
        var other = NATSConnectionStateMachine(servers: [a], settings: settings, seed: 7)
        var same = NATSConnectionStateMachine(servers: [a], settings: settings, seed: 8)
        _ = other.start()
        _ = same.start()
        #expect(other.connectFailed() != same.connectFailed())
    }

    @Test func aLostConnectionRedialsAtOnceAndSuccessResetsTheBackoff() {
        var m = NATSConnectionStateMachine(servers: [a, b], seed: 1)
        _ = m.start()
        m.connected()
        #expect(m.phase == .connected(server: 0, pingsOutstanding: 0))
        #expect(m.connectionLost() == .connect(b))
        _ = m.connectFailed()
        #expect(m.failures == 1)
        _ = m.waited()
        m.connected()
        #expect(m.failures == 0)
    }

    @Test func givesUpAfterTheConfiguredAttempts() {
        var settings = NATSConnectionStateMachine.Settings()
        settings.maxReconnectAttempts = 2
        var m = NATSConnectionStateMachine(servers: [a], settings: settings)
        _ = m.start()
        _ = m.connectFailed()
        _ = m.waited()
        _ = m.connectFailed()
        _ = m.waited()
        guard case .stop = m.connectFailed() else {
            Issue.record("did not give up")
            return
        }
        #expect(m.phase == .closed)
    }

    @Test func unansweredPingsMakeTheConnectionStale() {
        var m = NATSConnectionStateMachine(servers: [a])
        #expect(m.pingDue() == .none) // not connected: no ping
        _ = m.start()
        m.connected()
        #expect(m.pingDue() == .sendPing)
        m.pongReceived()
        #expect(m.pingDue() == .sendPing)
        #expect(m.pingDue() == .sendPing)
        guard case .closeConnection(let reason) = m.pingDue() else {
            Issue.record("not judged stale")
            return
        }
        #expect(reason.contains("stale"))
    }

    @Test func learnsAnnouncedServersAndLeavesALameDuck() {
        var m = NATSConnectionStateMachine(servers: [a])
        _ = m.start()
        m.connected()
        // Lame duck with no other server known: stay until the server closes.
        #expect(m.infoReceived(NATSServerInfo(lameDuckMode: true)) == .none)
        #expect(m.infoReceived(NATSServerInfo(connectURLs: ["10.0.0.2:4222", "a:4222", "junk:x"])) == .none)
        #expect(m.servers.count == 2)
        #expect(m.servers[1].host == "10.0.0.2" && m.servers[1].user == "u" && m.servers[1].password == "p")
        guard case .closeConnection = m.infoReceived(NATSServerInfo(lameDuckMode: true)) else {
            Issue.record("stayed on a lame duck")
            return
        }
        #expect(m.connectionLost() == .connect(m.servers[1]))
    }

    @Test func closeStopsEverything() {
        var m = NATSConnectionStateMachine(servers: [a])
        _ = m.start()
        guard case .closeConnection = m.close() else {
            Issue.record("close did not close the connection")
            return
        }
        guard case .stop = m.connectionLost() else {
            Issue.record("redialed after close")
            return
        }
        var w = NATSConnectionStateMachine(servers: [a])
        _ = w.start()
        _ = w.connectFailed()
        guard case .stop = w.close() else {
            Issue.record("a waiting client did not stop")
            return
        }
        guard case .stop = w.waited() else {
            Issue.record("redialed after close")
            return
        }
    }
}
