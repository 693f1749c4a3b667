/// The headers of an `HPUB` or `HMSG`: an optional status line (`NATS/1.0 503`) and fields whose
/// names keep their case (ADR-4). Lookup by name is exact, as the server's is.
public struct NATSHeaders: Sendable, Equatable {
    /// The status code of the first line, if any (`503` for no responders).
    public var status: Int?
    /// The words after the status code.
    public var statusDescription: String
    /// The fields, in order; a name may repeat.
    public private(set) var fields: [(name: String, value: String)]

    public init(status: Int? = nil, statusDescription: String = "", _ fields: [(String, String)] = []) {
        self.status = status
        self.statusDescription = statusDescription
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    /// The first value of a field.
    public subscript(name: String) -> String? {
        fields.first { $0.name == name }?.value
    }

    /// Adds a field. Names and values may not hold CR, LF or (names) ':' or spaces.
    public mutating func append(_ name: String, _ value: String) throws(NATSError) {
        guard !name.isEmpty, !name.utf8.contains(where: { $0 <= 32 || $0 == 58 || $0 == 127 }) else {
            throw NATSError(.invalidArgument, "header name '\(name)' is empty or holds a space, ':' or a control byte")
        }
        guard !value.utf8.contains(where: { $0 == 13 || $0 == 10 }) else {
            throw NATSError(.invalidArgument, "header '\(name)' has a line break in its value")
        }
        fields.append((name: name, value: value))
    }

    public static func == (a: NATSHeaders, b: NATSHeaders) -> Bool {
        a.status == b.status && a.statusDescription == b.statusDescription && a.fields.count == b.fields.count
            && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// The wire form: `NATS/1.0[ status[ description]]\r\n` + `Name: value\r\n`… + `\r\n`.
    public var encoded: [UInt8] {
        var s = "NATS/1.0"
        if let status { s += " \(status)" + (statusDescription.isEmpty ? "" : " \(statusDescription)") }
        s += "\r\n"
        for f in fields { s += "\(f.name): \(f.value)\r\n" }
        s += "\r\n"
        return Array(s.utf8)
    }

    /// Parses a header block (the first `#hdr` bytes of an `HMSG`).
    public static func parse(_ bytes: some Collection<UInt8>) throws(NATSError) -> NATSHeaders {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw NATSError(.protocolViolation, "headers are not UTF-8")
        }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)[...]
        guard let first = lines.popFirst(), first.hasPrefix("NATS/1.0") else {
            throw NATSError(.protocolViolation, "headers do not start with NATS/1.0")
        }
        var h = NATSHeaders()
        let rest = first.dropFirst("NATS/1.0".count).drop { $0 == " " }
        if !rest.isEmpty {
            let code = rest.prefix { $0 != " " }
            guard let n = Int(code), (100...999).contains(n) else {
                throw NATSError(.protocolViolation, "bad header status '\(rest)'")
            }
            h.status = n
            h.statusDescription = String(rest.dropFirst(code.count).drop { $0 == " " })
        }
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else {
                throw NATSError(.protocolViolation, "header line without ':'")
            }
            let name = String(line[..<colon])
            let value = String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
            h.fields.append((name: name, value: value))
        }
        return h
    }
}
