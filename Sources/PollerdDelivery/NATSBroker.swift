import Foundation
public import Logging
import Metrics
import NIOSSL
public import PollerdCore
public import PollerdNATS
import Synchronization

/// The daemon's NATS connection (`pollers.broker`), shared by its `nats` sinks: the client,
/// what the sinks need to know of the settings, and the broker's health for `/readyz`, the
/// dashboard and the log.
public final class NATSBroker: Sendable {
    public let client: NATSClient
    public let settings: BrokerSettings
    /// The servers, without credentials.
    public let servers: String
    private let horizon = Mutex<Int64>(0)

    public init(settings: BrokerSettings, logger: Logger) throws {
        var options: NATSClientOptions
        do {
            options = try NATSClientOptions(urls: settings.urls)
        } catch {
            throw NATSError(error.code, "pollers.broker: \(error.message)")
        }
        options.name = settings.name ?? "pollerd"
        options.user = settings.user
        options.password = settings.password
        options.token = settings.token
        options.version = PollerdVersion.string
        options.reconnectBufferBytes = settings.reconnectBufferBytes
        // The sinks wait for a connection rather than buffer: the outbox is the buffer.
        options.reconnect.maxReconnectWait = .seconds(5)
        if let tls = settings.tls {
            var t = TLSConfiguration.makeClientConfiguration()
            if let ca = tls.caFile { t.trustRoots = .file(ca) }
            if let cert = tls.certFile, let key = tls.keyFile {
                do {
                    t.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                    t.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
                } catch {
                    throw NATSError(.tls, "pollers.broker.tls: \(cert): \(error)")
                }
            }
            options.tls = t
        }
        self.settings = settings
        servers = options.servers.map(\.description).joined(separator: ", ")
        client = try NATSClient(
            options: options, logger: logger,
            onEvent: { event in
                switch event {
                case .connected: Gauge(label: "pollerd_broker_connected").record(1)
                case .disconnected, .closed: Gauge(label: "pollerd_broker_connected").record(0)
                default: break
                }
            })
    }

    /// Why the `nats` sinks cannot publish now, or nil when the broker is connected.
    public var problem: String? {
        if client.isConnected { return nil }
        return "not connected to NATS: " + (client.lastError ?? "connecting to \(servers)")
    }

    /// How long after an item's first attempt its last retry can come (the delivery tuning's
    /// attempts and delays): a JetStream stream whose duplicate window is shorter may store a
    /// late redelivery twice.
    public var retryHorizonMs: Int64 { horizon.withLock { $0 } }

    /// Takes the retry horizon from the delivery tuning (at start and on every reload).
    public func update(tuning: DeliveryTuning) {
        var total: Int64 = 0
        for a in 1..<max(1, tuning.maxAttempts) { total += tuning.retryDelayMs(afterAttempts: a, unit: 1) }
        horizon.withLock { $0 = total }
    }
}
