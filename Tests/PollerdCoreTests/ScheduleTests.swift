import Foundation
import PollerdCore
import Testing

@Suite struct ScheduleTests {
    @Test func everyIsAlignedToTheEpochGrid() {
        let s = Schedule(.every(seconds: 60))
        #expect(s.nextSlot(afterMs: ms("2026-01-01T00:00:30Z")) == ms("2026-01-01T00:01:00Z"))
        #expect(s.nextSlot(afterMs: ms("2026-01-01T00:01:00Z")) == ms("2026-01-01T00:02:00Z"))
        #expect(s.nextFire(afterMs: ms("2026-01-01T00:00:30Z"), offsetMs: 40_000) == ms("2026-01-01T00:00:40Z"))
        #expect(s.nextFire(afterMs: ms("2026-01-01T00:00:40Z"), offsetMs: 40_000) == ms("2026-01-01T00:01:40Z"))
    }

    @Test func atFiresOnce() {
        let s = Schedule(.at(ms("2026-06-01T12:00:00Z")))
        #expect(s.nextFire(afterMs: ms("2026-01-01T00:00:00Z"), offsetMs: 0) == ms("2026-06-01T12:00:00Z"))
        #expect(s.nextFire(afterMs: ms("2026-06-01T12:00:00Z"), offsetMs: 0) == nil)
        #expect(s.jitterOffsetMs(jobID: "x", defaultJitterMs: 5000, nowMs: 0) == 0)
    }

    @Test func jitterIsStableAcrossRuns() {
        // FNV-1a of the id: the same number in every process, so a restart never reshuffles.
        let s = Schedule(.every(seconds: 3600))
        let a = s.jitterOffsetMs(jobID: "ana_hn", defaultJitterMs: 5000, nowMs: 0)
        // Pinned values: a per-process seeded hash (Swift's Hasher) would break these.
        #expect(StableHash.fnv1a("ana_hn") == 0x0358_f773_2ebe_04ca)
        #expect(a == 1250)
        #expect(StableHash.fnv1a("abc") == StableHash.fnv1a("abc"))
        #expect(StableHash.fnv1a("abc") != StableHash.fnv1a("abd"))
    }

    @Test func jitterSpreadsFiveHundredJobs() {
        let s = Schedule(.every(seconds: 60), jitterMs: 60_000)
        var buckets = [Int](repeating: 0, count: 10)
        for i in 0..<500 {
            let off = s.jitterOffsetMs(jobID: "job-\(i)", defaultJitterMs: 5000, nowMs: 0)
            #expect(off >= 0 && off < 60_000)
            buckets[Int(off / 6000)] += 1
        }
        // 50 expected per 6 s bucket; a stable hash keeps every bucket well populated.
        #expect(buckets.allSatisfy { $0 >= 25 && $0 <= 80 }, "buckets: \(buckets)")
    }

    @Test func jitterIsBoundedByThePeriod() {
        let s = Schedule(.every(seconds: 2))
        for i in 0..<100 {
            #expect(s.jitterOffsetMs(jobID: "j\(i)", defaultJitterMs: 5000, nowMs: 0) < 2000)
        }
        #expect(
            Schedule(.every(seconds: 60), jitterMs: 0).jitterOffsetMs(jobID: "a", defaultJitterMs: 5000, nowMs: 0) == 0)
    }

    @Test func nominalIntervals() throws {
        #expect(Schedule(.every(seconds: 42)).nominalIntervalSecs(nowMs: 0) == 42)
        let c = Schedule(.cron(try CronExpression("0 */5 * * * *"), .utc))
        #expect(c.nominalIntervalSecs(nowMs: ms("2026-01-01T00:00:00Z")) == 300)
        #expect(Schedule(.at(0)).nominalIntervalSecs(nowMs: 0) == 0)
    }

    @Test func rfc3339RoundTrips() {
        #expect(RFC3339.parse("2026-12-31T23:59:00-05:00") == ms("2027-01-01T04:59:00Z"))
        #expect(RFC3339.format(ms: ms("2026-01-02T03:04:05.678Z")) == "2026-01-02T03:04:05.678Z")
        #expect(RFC3339.parse("2026-02-30T00:00:00Z") == nil)
        #expect(RFC3339.parse("2026-01-01 00:00:00") == nil)
        #expect(RFC3339.parse("yesterday") == nil)
    }

    /// `format` against Foundation's ISO 8601 formatter, over instants from 1970 to 9999 (and
    /// before 1970), with and without milliseconds; and back through `parse`.
    @Test func rfc3339FormatAgreesWithFoundation() {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var samples: [Int64] = [0, 999, 1000, -1, -1000, 253_402_300_799_000, 951_782_400_000]
        for _ in 0..<500 { samples.append(Int64.random(in: -2_000_000_000_000...253_402_300_799_999)) }
        for ms in samples {
            let text = RFC3339.format(ms: ms)
            let date = Date(timeIntervalSince1970: Double(ms) / 1000)
            let expected = ms % 1000 == 0 ? plain.string(from: date) : fractional.string(from: date)
            #expect(text == expected, "\(ms)")
            #expect(RFC3339.parse(text) == ms, "\(ms)")
        }
    }

    @Test func base64URLCursor() {
        #expect(Base64URL.encode(Data("hello".utf8)) == "aGVsbG8")
        #expect(Base64URL.decode("aGVsbG8") == Data("hello".utf8))
        #expect(Base64URL.decode("aGVsbG8=") == Data("hello".utf8))
        #expect(Base64URL.decode("!!not_b64!!") == nil)
        #expect(Base64URL.encode(Data([0xfb, 0xff])) == "-_8")
        #expect(Base64URL.decode("-_8") == Data([0xfb, 0xff]))
        #expect(Base64URL.decode("a") == nil) // a length that no byte string has
        for n in 0..<40 {
            let d = Data((0..<n).map { _ in UInt8.random(in: 0...255) })
            #expect(Base64URL.decode(Base64URL.encode(d)) == d)
        }
    }
}

@Suite struct CanonicalJSONTests {
    @Test func sortedKeysCompactAndSerdeEscapes() {
        let v: JSONValue = .object([
            "b": .array([.int(1), .bool(false), .null]),
            "a": .object(["z": .string("q\"\\\n\t\r\u{08}\u{0C}\u{01}/é"), "y": .double(1.5)]),
        ])
        #expect(v.canonicalString == #"{"a":{"y":1.5,"z":"q\"\\\n\t\r\b\f\u0001/é"},"b":[1,false,null]}"#)
        // The same text JSONEncoder gives for what both can write.
        let simple: JSONValue = .object(["k": .string("v"), "a": .int(-3)])
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(simple.canonicalString == String(decoding: try! enc.encode(simple), as: UTF8.self))
    }
}
