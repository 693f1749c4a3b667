import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PollerdConfig
import PollerdCore

/// The CLI's way to the running daemon: its admin API, at the address and with a token from the
/// job file or the environment (`POLLERD_ADMIN_TOKEN`).
struct DaemonClient {
    let base: String
    let token: String?

    /// nil when the job file turns the admin API off.
    static func from(
        _ file: JobFile, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> DaemonClient? {
        guard let listen = file.settings.adminListen else { return nil }
        // A daemon listening on every address is reached on loopback.
        var host = listen.host
        if host == "0.0.0.0" { host = "127.0.0.1" } else if host == "::" || host == "[::]" { host = "::1" }
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        // An admin token when there is one (actions need it); else a read token (reads pass).
        let token =
            environment["POLLERD_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            ?? file.settings.admin.tokens.first { $0.role == "admin" }?.token
            ?? environment["POLLERD_READ_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            ?? file.settings.admin.tokens.first { $0.role == "read" }?.token
        return DaemonClient(base: "http://\(hostPart):\(listen.port)", token: token)
    }

    struct Answer {
        var status: Int
        var body: JSONValue
        var errorMessage: String? { body["error"]?["message"]?.stringValue }
    }

    /// True when a daemon answers `/readyz` within a second.
    func isUp() async -> Bool {
        (try? await request("GET", "/readyz", timeoutSecs: 1))?.status == 200
    }

    func request(
        _ method: String, _ path: String, body: JSONValue? = nil, timeoutSecs: Int64 = 60
    ) async throws -> Answer {
        var req = HTTPClientRequest(url: base + path)
        req.method = .init(rawValue: method)
        if let token { req.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            req.headers.add(name: "Content-Type", value: "application/json")
            req.body = .bytes(ByteBuffer(string: body.canonicalString))
        }
        let response = try await HTTPClient.shared.execute(req, timeout: .seconds(timeoutSecs))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let json = (try? JSONValue.parse(bytes: bytes.readableBytesView)) ?? .null
        return Answer(status: Int(response.status.code), body: json)
    }
}
