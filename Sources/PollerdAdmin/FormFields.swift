import Foundation

/// An `application/x-www-form-urlencoded` body (what an HTML form posts): fields in order, a
/// name may repeat (checkboxes). Hostile input: a field that does not decode is dropped.
public struct FormFields: Sendable, Equatable {
    public var fields: [(name: String, value: String)]

    public init(_ text: String) {
        fields = []
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = parts.count > 1 ? Self.decode(parts[1]) : "" else {
                continue
            }
            fields.append((name, value))
        }
    }

    /// The first value of a field.
    public subscript(_ name: String) -> String? { fields.first { $0.name == name }?.value }

    /// Every value of a field, in order.
    public func all(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }

    static func decode(_ s: Substring) -> String? {
        String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    public static func == (a: FormFields, b: FormFields) -> Bool {
        a.fields.count == b.fields.count
            && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
