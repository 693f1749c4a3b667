import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The tick-path benchmark's feed server: `/feed/N` for even N is a fixed 50-entry feed with an
/// ETag (so every poll after the first is a 304); for odd N, a 50-entry feed that gains an entry
/// every second (a 200 to parse, one new item). Half the answers are 304s, half are feeds.
struct FeedServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed-server",
        abstract: "Serve the tick-path benchmark's feeds on loopback (prints 'listening PORT')."
    )

    @Option(help: "Port (0: any).") var port: Int = 0
    @Option(help: "Entries per feed.") var entries: Int = 50

    static func render(newest: Int, count: Int) -> ByteBuffer {
        var s =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel><title>Bench</title><link>https://bench.example/</link><description>d</description>\n"
        for id in stride(from: newest, to: newest - count, by: -1) {
            let secs = Int64(id)
            let date = Date(timeIntervalSince1970: TimeInterval(secs))
            s +=
                "<item><title>Entry \(id): a title of a typical length</title><link>https://bench.example/posts/\(id)</link><guid isPermaLink=\"false\">bench-\(id)</guid>"
            s +=
                "<pubDate>\(Self.httpDate.string(from: date))</pubDate><dc:creator>Bench Author</dc:creator><category>news</category>"
            s +=
                "<description><![CDATA[<p>A summary of entry \(id) with a few sentences of text, as blogs write them. It goes on for a while to look real.</p>]]></description></item>\n"
        }
        s += "</channel></rss>\n"
        return ByteBuffer(string: s)
    }

    static let httpDate: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f
    }()

    final class Cache: Sendable {
        let fixed: ByteBuffer
        let moving = Mutex<(Int, ByteBuffer)?>(nil)
        let count: Int
        init(count: Int) {
            self.count = count
            fixed = FeedServerCommand.render(newest: 1_000_000, count: count)
        }
        func current() -> ByteBuffer {
            let now = Int(Date().timeIntervalSince1970)
            if let (sec, body) = moving.withLock({ $0 }), sec == now { return body }
            let body = FeedServerCommand.render(newest: now, count: count)
            moving.withLock { $0 = (now, body) }
            return body
        }
    }

    func run() async throws {
        let cache = Cache(count: entries)
        let router = Router()
        router.get("/feed/:n") { request, context -> Response in
            let n = Int(context.parameters.get("n") ?? "") ?? 0
            var headers = HTTPFields()
            headers[.contentType] = "application/rss+xml; charset=utf-8"
            if n % 2 == 0 {
                let tag = "\"fixed-\(n)\""
                headers[.eTag] = tag
                if request.headers[.ifNoneMatch] == tag { return Response(status: .notModified, headers: headers) }
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: cache.fixed))
            }
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: cache.current()))
        }
        var logger = Logger(label: "feed-server")
        logger.logLevel = .error
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
            onServerRunning: { ch in
                FileHandle.standardOutput.write(Data("listening \(ch.localAddress?.port ?? 0)\n".utf8))
            }, logger: logger)
        try await app.runService()
    }
}
