import ArgumentParser
import Foundation
import PollerdCore
import PollerdHTTP

/// pollerd's feed parser over files, the same measure as Benchmarks/feed-bench/feedparser_bench.py.
struct FeedParseBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed-parse",
        abstract:
            "Parse rate of the rss kind's parser (bytes to normalized entries); one JSON line per file, best of the rounds."
    )

    @Option(help: "Rounds per file.") var rounds: Int = 5
    @Argument(help: "Feed files.") var files: [String]

    func run() throws {
        for path in files {
            let data = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            let reps = max(1, 20_000_000 / data.count)
            var best = Double.infinity
            var entries = 0
            for _ in 0..<rounds {
                let t0 = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<reps {
                    let feed = try FeedParser.parse(data, url: "https://blog.example.com/feed")
                    // The item JSON is what the kind emits: build it, as a tick does.
                    entries = feed.entries.reduce(0) { n, e in
                        if case .object = e.json { return n + 1 } else { return n }
                    }
                }
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(reps)
                best = min(best, dt)
            }
            let line: [String: Any] = [
                "file": (path as NSString).lastPathComponent, "bytes": data.count, "entries": entries,
                "mb_per_sec": (Double(data.count) / best / 1e6 * 1000).rounded() / 1000,
            ]
            print(
                String(
                    decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
        }
    }
}
