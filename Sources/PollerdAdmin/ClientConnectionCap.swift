import NIOCore
import NIOHTTPTypes
import Synchronization

/// Connections held open at once, counted by the client's IP address: one client (a slowloris
/// holding thousands of connections that trickle their request heads) can take at most `perClient`
/// of the listener's connections, so the rest, and a liveness probe from elsewhere, stay
/// answerable. Shared by every connection of one listener.
final class ClientConnectionCap: Sendable {
    let perClient: Int
    private let open = Mutex<[String: Int]>([:])

    init(perClient: Int) { self.perClient = perClient }

    /// Counts a new connection from `client`; false (not counted) when the client is at its cap.
    func admit(_ client: String) -> Bool {
        open.withLock { all in
            let n = all[client, default: 0]
            guard n < perClient else { return false }
            all[client] = n + 1
            return true
        }
    }

    /// A counted connection from `client` closed.
    func release(_ client: String) {
        open.withLock { all in
            let n = all[client, default: 0] - 1
            all[client] = n > 0 ? n : nil
        }
    }

    /// Open connections from `client`.
    func count(_ client: String) -> Int { open.withLock { $0[client, default: 0] } }
}

/// Closes a new connection at once when its client already holds its cap of this listener's
/// connections (`ClientConnectionCap`); counts it otherwise, until it closes.
final class ClientConnectionCapHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let cap: ClientConnectionCap
    private var counted: String?

    init(cap: ClientConnectionCap) { self.cap = cap }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context)
        context.fireChannelActive()
    }

    private func admit(_ context: ChannelHandlerContext) {
        guard counted == nil else { return }
        // A Unix socket or an address NIO cannot name counts as one client.
        let client = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if cap.admit(client) {
            counted = client
        } else {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { release() }

    private func release() {
        if let client = counted { cap.release(client) }
        counted = nil
    }
}
