import Foundation

/// Percent-encoding of a URL path segment or query value: everything but RFC 3986's unreserved
/// characters is encoded, so a hostile value can change neither the path nor the query.
public enum PercentEncoding {
    static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    public static func component(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? ""
    }
}
