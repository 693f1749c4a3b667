import Foundation
import PollerdCore
import PollerdNATS
import Yams

extension JobFileValidator {
    static let deliveryKeys: Set<String> = [
        "max_attempts", "max_backlog", "dedup_window", "concurrency", "batch_size", "retry_base_ms", "retry_max_secs",
    ]
    static let sinkTypes: Set<String> = ["file", "webhook", "nats", "stdout"]

    mutating func readDelivery(_ node: Node) throws -> DeliveryTuning {
        let m = try mapping(node, job: nil, what: "'delivery'")
        try checkKeys(m, allowed: Self.deliveryKeys, job: nil, context: "'delivery'")
        var d = DeliveryTuning()
        if let n = value(m, "max_attempts") {
            d.maxAttempts = Int(try int(n, job: nil, key: "max_attempts", range: 1...1000))
        }
        if let n = value(m, "max_backlog") {
            d.maxBacklog = try int(n, job: nil, key: "max_backlog", range: 1...100_000_000)
        }
        if let n = value(m, "dedup_window") {
            d.dedupWindow = Int(try int(n, job: nil, key: "dedup_window", range: 0...1_000_000))
        }
        if let n = value(m, "concurrency") {
            d.concurrency = Int(try int(n, job: nil, key: "concurrency", range: 1...1024))
        }
        if let n = value(m, "batch_size") {
            d.batchSize = Int(try int(n, job: nil, key: "batch_size", range: 1...10_000))
        }
        if let n = value(m, "retry_base_ms") {
            d.retryBaseMs = try int(n, job: nil, key: "retry_base_ms", range: 1...3_600_000)
        }
        if let n = value(m, "retry_max_secs") {
            d.retryMaxMs = try int(n, job: nil, key: "retry_max_secs", range: 1...86_400) * 1000
        }
        if d.retryMaxMs < d.retryBaseMs {
            throw fail(node, "delivery.retry_max_secs must not be shorter than retry_base_ms")
        }
        return d
    }

    static let adminKeys: Set<String> = ["listen", "tokens", "open_probes", "probe_listen"]

    /// `HOST:PORT`, or `off`.
    mutating func listen(_ n: Node, key: String) throws -> ListenAddress? {
        let v = try string(n, job: nil, key: key)
        if v == "off" { return nil }
        guard let address = ListenAddress(v) else {
            throw fail(n, "\(key) must be HOST:PORT, such as 127.0.0.1:9091, or off")
        }
        return address
    }

    /// `pollers.admin`: listen address, tokens and their roles, open probes.
    mutating func readAdmin(_ node: Node, into s: inout GlobalSettings) throws {
        let m = try mapping(node, job: nil, what: "'admin'")
        try checkKeys(m, allowed: Self.adminKeys, job: nil, context: "'admin'")
        if let n = value(m, "listen") {
            s.adminListen = try listen(n, key: "admin.listen")
            s.admin.listenExplicit = true
        }
        if let n = value(m, "open_probes") { s.admin.openProbes = try bool(n, job: nil, key: "open_probes") }
        if let n = value(m, "probe_listen") { s.admin.probeListen = try listen(n, key: "admin.probe_listen") }
        if let n = value(m, "tokens") {
            guard case .sequence(let seq) = n else { throw fail(n, "admin.tokens must be a list of { token, role }") }
            for entry in seq {
                let t = try mapping(entry, job: nil, what: "an admin token")
                try checkKeys(t, allowed: ["token", "role"], job: nil, context: "an admin token")
                guard let tok = value(t, "token") else { throw fail(entry, "an admin token needs 'token'") }
                let token = try string(tok, job: nil, key: "token")
                guard token.utf8.count >= 16 else { throw fail(tok, "an admin token must be at least 16 characters") }
                let role = try value(t, "role").map { try string($0, job: nil, key: "role") } ?? "read"
                guard role == "read" || role == "admin" else {
                    throw fail(entry, "an admin token's role is 'read' or 'admin', not '\(role)'")
                }
                s.admin.tokens.append(AdminTokenSpec(token: token, role: role))
            }
        }
    }

    static let brokerKeys: Set<String> = [
        "url", "urls", "user", "password", "token", "name", "tls", "ack_window", "reconnect_buffer_bytes",
    ]

    /// `pollers.broker`: the NATS servers the `nats` sinks publish to, their credentials and TLS.
    mutating func readBroker(_ node: Node) throws -> BrokerSettings {
        let m = try mapping(node, job: nil, what: "'broker'")
        try checkKeys(m, allowed: Self.brokerKeys, job: nil, context: "'broker'")
        var urlNodes: [Node] = []
        if let n = value(m, "url") { urlNodes.append(n) }
        if let n = value(m, "urls") {
            guard case .sequence(let seq) = n else { throw fail(n, "broker.urls must be a list of nats:// URLs") }
            urlNodes += seq
        }
        guard !urlNodes.isEmpty else { throw fail(node, "broker needs 'url' or 'urls' (nats://host:4222)") }
        var b = BrokerSettings(urls: [])
        for n in urlNodes {
            let u = try string(n, job: nil, key: "broker.url")
            do { _ = try NATSServerAddress(parsing: u) } catch { throw fail(n, "broker: \(error.message)") }
            b.urls.append(u)
        }
        if let n = value(m, "user") { b.user = try string(n, job: nil, key: "broker.user") }
        if let n = value(m, "password") { b.password = try string(n, job: nil, key: "broker.password") }
        if let n = value(m, "token") { b.token = try string(n, job: nil, key: "broker.token") }
        if (b.user == nil) != (b.password == nil) {
            throw fail(node, "broker: 'user' and 'password' go together")
        }
        if b.user != nil, b.token != nil { throw fail(node, "broker: use 'user' and 'password', or 'token', not both") }
        if let n = value(m, "name") { b.name = try string(n, job: nil, key: "broker.name") }
        if let n = value(m, "ack_window") {
            b.ackWindow = Int(try int(n, job: nil, key: "ack_window", range: 1...65_536))
        }
        if let n = value(m, "reconnect_buffer_bytes") {
            b.reconnectBufferBytes = Int(
                try int(n, job: nil, key: "reconnect_buffer_bytes", range: 0...1_073_741_824))
        }
        if let n = value(m, "tls") {
            let tm = try mapping(n, job: nil, what: "'broker.tls'")
            try checkKeys(tm, allowed: ["ca_file", "cert_file", "key_file"], job: nil, context: "'broker.tls'")
            var tls = BrokerTLS()
            for (key, path) in [("ca_file", \BrokerTLS.caFile), ("cert_file", \.certFile), ("key_file", \.keyFile)] {
                guard let f = value(tm, key) else { continue }
                let resolved = resolve(try string(f, job: nil, key: "broker.tls.\(key)"))
                guard FileManager.default.isReadableFile(atPath: resolved) else {
                    throw fail(f, "broker.tls.\(key): cannot read \(resolved)")
                }
                tls[keyPath: path] = resolved
            }
            if (tls.certFile == nil) != (tls.keyFile == nil) {
                throw fail(n, "broker.tls: 'cert_file' and 'key_file' go together")
            }
            b.tls = tls
        }
        return b
    }

    static let httpKeys: Set<String> = ["per_host_limit", "user_agent", "allow_addresses"]

    /// `pollers.http`: the HTTP kinds' shared settings.
    mutating func readHTTP(_ node: Node) throws -> HTTPSettings {
        let m = try mapping(node, job: nil, what: "'http'")
        try checkKeys(m, allowed: Self.httpKeys, job: nil, context: "'http'")
        var h = HTTPSettings()
        if let n = value(m, "per_host_limit") {
            h.perHostLimit = Int(try int(n, job: nil, key: "per_host_limit", range: 1...1024))
        }
        if let n = value(m, "user_agent") {
            let ua = try string(n, job: nil, key: "user_agent")
            guard !ua.isEmpty, !ua.contains("\r"), !ua.contains("\n") else {
                throw fail(n, "http.user_agent must be one non-empty line")
            }
            h.userAgent = ua
        }
        if let n = value(m, "allow_addresses") {
            guard case .sequence(let seq) = n else {
                throw fail(n, "http.allow_addresses must be a list such as [\"10.1.0.0/16\", \"127.0.0.1/32:8080\"]")
            }
            for entry in seq {
                let text = try string(entry, job: nil, key: "allow_addresses")
                guard let range = AddressRange(text) else {
                    throw fail(
                        entry,
                        "http.allow_addresses: '\(text)' is not ADDRESS[/BITS][:PORT] (an IPv6 address with a port goes in brackets)"
                    )
                }
                h.allowAddresses.append(range)
            }
        }
        return h
    }

    /// A `deliver:` list: each entry is one of `file`, `webhook`, `nats`, `stdout`, with an optional `name`.
    mutating func readSinks(_ node: Node, job: String?) throws -> [SinkSpec] {
        if case .scalar = node, Self.tagName(node) == .null { return [] }
        guard case .sequence(let seq) = node else {
            throw fail(node, job: job, "deliver must be a list of sinks, such as [{ file: { path: out.jsonl } }]")
        }
        var sinks: [SinkSpec] = []
        var names: [String: Int] = [:]
        for entry in seq {
            let sink = try readSink(entry, job: job)
            if let line = names[sink.name] {
                throw fail(
                    entry, job: job,
                    "two sinks named '\(sink.name)' (the first at line \(line)); give one a distinct 'name'")
            }
            names[sink.name] = entry.mark?.line ?? 0
            sinks.append(sink)
        }
        return sinks
    }

    mutating func readSink(_ node: Node, job: String?) throws -> SinkSpec {
        let m = try mapping(node, job: job, what: "a sink")
        try checkKeys(m, allowed: Self.sinkTypes.union(["name"]), job: job, context: "a sink")
        let types = m.compactMap { k, _ in k.scalar.map(\.string) }.filter { Self.sinkTypes.contains($0) }
        guard types.count == 1, let type = types.first, let body = value(m, type) else {
            throw fail(
                node, job: job,
                types.isEmpty
                    ? "a sink needs one of file, webhook, nats or stdout"
                    : "a sink takes only one of file, webhook, nats or stdout")
        }
        let target: SinkTarget
        // The default name must not depend on how the job file was named on the command line:
        // a file sink is known by its path as written.
        var defaultName: String?
        switch type {
        case "stdout":
            if case .mapping(let bm) = body {
                try checkKeys(bm, allowed: [], job: job, context: "stdout")
            } else if !(Self.tagName(body) == .null) {
                throw fail(body, job: job, "stdout takes no settings: write 'stdout: {}'")
            }
            target = .stdout
        case "file":
            let bm = try mapping(body, job: job, what: "file")
            try checkKeys(bm, allowed: ["path"], job: job, context: "file")
            guard let p = value(bm, "path") else { throw fail(body, job: job, "file needs 'path'") }
            let path = try string(p, job: job, key: "path")
            target = .file(path: resolve(path))
            defaultName = "file:\(path)"
        case "nats":
            let bm = try mapping(body, job: job, what: "nats")
            try checkKeys(bm, allowed: ["subject"], job: job, context: "nats")
            guard let sn = value(bm, "subject") else { throw fail(body, job: job, "nats needs 'subject'") }
            let subject = try string(sn, job: job, key: "subject")
            if let problem = NATSCommand.subjectProblem(subject, publishing: true) {
                throw fail(sn, job: job, "invalid subject '\(subject)': \(problem)")
            }
            target = .nats(subject: subject)
            if settings.broker == nil {
                warn(
                    sn, job: job,
                    "no pollers.broker is configured: this sink publishes on the in-process broker, where no subscriber in the process means items wait in the outbox"
                )
            }
        default:
            target = .webhook(try readWebhook(body, job: job))
        }
        var spec = SinkSpec(target)
        if let defaultName { spec.name = defaultName }
        if let n = value(m, "name") {
            let name = try string(n, job: job, key: "name")
            guard !name.isEmpty, name.utf8.count <= 128, !name.contains(where: { $0.isNewline }) else {
                throw fail(n, job: job, "a sink name must be 1 to 128 characters on one line")
            }
            spec.name = name
        }
        return spec
    }

    mutating func readWebhook(_ body: Node, job: String?) throws -> WebhookTarget {
        let bm = try mapping(body, job: job, what: "webhook")
        try checkKeys(bm, allowed: ["url", "headers", "secret", "timeout_secs"], job: job, context: "webhook")
        guard let un = value(bm, "url") else { throw fail(body, job: job, "webhook needs 'url'") }
        let url = try string(un, job: job, key: "url")
        guard let comps = URLComponents(string: url), let scheme = comps.scheme?.lowercased(),
            scheme == "http" || scheme == "https",
            let host = comps.host, !host.isEmpty
        else {
            throw fail(un, job: job, "webhook url must be an http:// or https:// URL with a host, not '\(url)'")
        }
        var w = WebhookTarget(url: url)
        if let hn = value(bm, "headers") {
            let hm = try mapping(hn, job: job, what: "headers")
            for (k, v) in hm {
                let name = k.scalar!.string
                guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                    throw fail(k, job: job, "invalid header name '\(name)'")
                }
                let lower = name.lowercased()
                if ["content-length", "host", "x-pollerd-signature", "transfer-encoding"].contains(lower) {
                    throw fail(k, job: job, "header '\(name)' is set by pollerd and cannot be configured")
                }
                let value = try string(v, job: job, key: name)
                if value.contains(where: { $0 == "\r" || $0 == "\n" }) {
                    throw fail(v, job: job, "header '\(name)' must be on one line")
                }
                w.headers[name] = value
            }
        }
        if let sn = value(bm, "secret") {
            let secret = try string(sn, job: job, key: "secret")
            if secret.isEmpty {
                throw fail(sn, job: job, "secret must not be empty (leave it out to send no signature)")
            }
            w.secret = secret
        }
        if let tn = value(bm, "timeout_secs") {
            w.timeoutSecs = try int(tn, job: job, key: "timeout_secs", range: 1...300)
        }
        return w
    }

    /// A path resolved against the job file's directory.
    func resolve(_ path: String) -> String {
        if path.hasPrefix("/") { return (path as NSString).standardizingPath }
        let dir = (file as NSString).deletingLastPathComponent
        return (((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(path) as NSString).standardizingPath
    }
}
