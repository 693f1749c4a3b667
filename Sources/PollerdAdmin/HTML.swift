import Foundation
import HTTPTypes
public import Hummingbird
import PollerdCore

/// HTML helpers for the dashboard and the admin server's own pages (errors, login).
public enum HTML {
    /// Text made safe inside an element or a quoted attribute.
    public static func escape(_ s: String) -> String {
        MarkupEscape.escape(s, quote: true, apostrophe: true)
    }

    /// The content security policy of every dashboard page: this server's scripts and styles only,
    /// no framing, forms posting here only.
    public static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    public static func secureHeaders(_ headers: inout HTTPFields) {
        headers[HTTPField.Name("Content-Security-Policy")!] = contentSecurityPolicy
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        if headers[.cacheControl] == nil { headers[.cacheControl] = "no-store" }
    }

    /// A bare page (errors, login) in the dashboard's style.
    public static func page(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title)) · pollerd</title><link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
        <link rel="stylesheet" href="/static/app.css"></head>
        <body>\(body)</body></html>
        """
    }

    public static func response(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        secureHeaders(&headers)
        return Response(status: status, headers: headers, body: .init(byteBuffer: .init(string: html)))
    }

    /// A stylesheet or script of the dashboard's.
    public static func asset(_ text: String, type: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: .init(string: text)))
    }

    /// 303 to a local path (the browser GETs it).
    public static func redirect(_ location: String) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }

    /// `next` when it is a path on this server, else `/` (no open redirect).
    public static func localPath(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.hasPrefix("/\\"),
            !next.contains(where: { $0.isNewline || $0 == "\0" }), next.utf8.count <= 2048
        else { return "/" }
        return next
    }
}
