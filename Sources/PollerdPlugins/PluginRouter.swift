import Synchronization

/// How a plugin's ticks are delivered.
public enum PluginLifecycle: String, Sendable, Equatable {
    case longLived = "long_lived"
    case ephemeral
}

/// One registered plugin's poller capability (the seed's `PluginPollerHandle`).
public struct PluginHandle: Sendable, Equatable {
    public var pluginID: String
    public var kinds: [String]
    public var brokerTopicPrefix: String
    public var lifecycle: PluginLifecycle
    public var maxConcurrentTicks: Int
    public var tickTimeoutSecs: Int64
    public var entrypointCommand: String?

    public init(
        pluginID: String, kinds: [String], brokerTopicPrefix: String, lifecycle: PluginLifecycle = .longLived,
        maxConcurrentTicks: Int = 1, tickTimeoutSecs: Int64 = 60, entrypointCommand: String? = nil
    ) {
        self.pluginID = pluginID
        self.kinds = kinds
        self.brokerTopicPrefix = brokerTopicPrefix
        self.lifecycle = lifecycle
        self.maxConcurrentTicks = maxConcurrentTicks
        self.tickTimeoutSecs = tickTimeoutSecs
        self.entrypointCommand = entrypointCommand
    }
}

/// Why a registration was refused.
public enum PluginRouteError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The kind belongs to another plugin.
    case duplicateKind(kind: String, existingPlugin: String, newPlugin: String)
    /// The kind is built into pollerd.
    case builtinKind(kind: String, plugin: String)

    public var description: String {
        switch self {
        case .duplicateKind(let k, let a, let b):
            return "kind '\(k)' is declared by both plugin '\(a)' and plugin '\(b)'"
        case .builtinKind(let k, let p): return "plugin '\(p)' declares kind '\(k)', which is built into pollerd"
        }
    }
}

/// Which plugin owns which kind. Kinds are unique across plugins and never shadow a built-in.
public final class PluginRouter: Sendable {
    private let handles = Mutex<[PluginHandle]>([])
    private let builtinKinds: Set<String>

    public init(builtinKinds: Set<String> = []) {
        self.builtinKinds = builtinKinds
    }

    /// Registers a plugin; the same plugin id again replaces it.
    public func register(_ handle: PluginHandle) throws(PluginRouteError) {
        try handles.withLock { (all: inout [PluginHandle]) throws(PluginRouteError) in
            for k in handle.kinds where builtinKinds.contains(k) {
                throw .builtinKind(kind: k, plugin: handle.pluginID)
            }
            for existing in all where existing.pluginID != handle.pluginID {
                for k in handle.kinds where existing.kinds.contains(k) {
                    throw .duplicateKind(kind: k, existingPlugin: existing.pluginID, newPlugin: handle.pluginID)
                }
            }
            all.removeAll { $0.pluginID == handle.pluginID }
            all.append(handle)
        }
    }

    /// The plugin that owns a kind.
    public func handle(forKind kind: String) -> PluginHandle? {
        handles.withLock { $0.first { $0.kinds.contains(kind) } }
    }

    public var isEmpty: Bool { handles.withLock { $0.isEmpty } }
    public var count: Int { handles.withLock { $0.count } }
    /// Every handle, in registration order.
    public var all: [PluginHandle] { handles.withLock { $0 } }
}
