public import PollerdCore

/// Typed access to a job's `config` object with errors that name the key.
public struct ConfigReader: Sendable {
    public let object: [String: JSONValue]

    /// Reads `config`, which must be an object (null counts as empty).
    public init(_ config: JSONValue) throws(ConfigIssue) {
        switch config {
        case .object(let o): object = o
        case .null: object = [:]
        default: throw ConfigIssue("config must be a mapping")
        }
    }

    /// Rejects keys outside `allowed`, with a did-you-mean.
    public func allowOnly(_ allowed: Set<String>) throws(ConfigIssue) {
        for key in object.keys.sorted() where !allowed.contains(key) {
            let hint = Suggest.closest(to: key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
            throw ConfigIssue(
                path: [key], "unknown key\(hint); known keys: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    public func string(_ key: String) throws(ConfigIssue) -> String? {
        guard let v = object[key], v != .null else { return nil }
        guard case .string(let s) = v else { throw ConfigIssue(path: [key], "must be a string") }
        return s
    }

    public func int(_ key: String) throws(ConfigIssue) -> Int64? {
        guard let v = object[key], v != .null else { return nil }
        guard let i = v.intValue else { throw ConfigIssue(path: [key], "must be an integer") }
        return i
    }

    public func bool(_ key: String) throws(ConfigIssue) -> Bool? {
        guard let v = object[key], v != .null else { return nil }
        guard case .bool(let b) = v else { throw ConfigIssue(path: [key], "must be true or false") }
        return b
    }

    public func stringList(_ key: String) throws(ConfigIssue) -> [String]? {
        guard let v = object[key], v != .null else { return nil }
        guard case .array(let a) = v else { throw ConfigIssue(path: [key], "must be a list of strings") }
        var out: [String] = []
        for (i, e) in a.enumerated() {
            guard case .string(let s) = e else { throw ConfigIssue(path: [key, "\(i)"], "must be a string") }
            out.append(s)
        }
        return out
    }

    public func stringMap(_ key: String) throws(ConfigIssue) -> [String: String]? {
        guard let v = object[key], v != .null else { return nil }
        guard case .object(let o) = v else { throw ConfigIssue(path: [key], "must be a mapping of strings") }
        var out: [String: String] = [:]
        for (k, e) in o {
            guard case .string(let s) = e else { throw ConfigIssue(path: [key, k], "must be a string") }
            out[k] = s
        }
        return out
    }
}
