import PollerdCore
import Testing

@testable import PollerdHTTP

@Suite struct FeedDateTests {
    @Test(arguments: [
        ("Sun, 19 May 2002 15:21:36 GMT", "2002-05-19T15:21:36Z"),
        ("Sun, 19 May 2002 15:21 GMT", "2002-05-19T15:21:00Z"),
        ("19 May 2002 15:21:36 +0000", "2002-05-19T15:21:36Z"),
        ("Sun, 19 May 02 15:21:36 EDT", "2002-05-19T19:21:36Z"),
        ("Sun, 19 May 99 15:21:36 GMT", "1999-05-19T15:21:36Z"),
        ("Sun, 19 May 2002 15:21:36 +05:30", "2002-05-19T09:51:36Z"),
        ("Sun, 19 May 2002 15:21:36 -0800", "2002-05-19T23:21:36Z"),
        ("Sun, 19 May 2002 15:21:36", "2002-05-19T15:21:36Z"),
        ("Sun, 19 May 2002 15:21:36 PT", "2002-05-19T23:21:36Z"),
        ("Sunday, 19 May 2002 15:21:36 GMT", "2002-05-19T15:21:36Z"),
        ("19 May 2002", "2002-05-19T00:00:00Z"),
        ("Sun May 19 15:21:36 2002", "2002-05-19T15:21:36Z"),
        ("Sun, 19 May 2002 15:21:36Z", "2002-05-19T15:21:36Z"),
        ("2002-05-19T15:21:36Z", "2002-05-19T15:21:36Z"),
        ("2002-05-19T15:21:36.5+02:00", "2002-05-19T13:21:36.500Z"),
        ("2002-05-19T15:21:36.123456789Z", "2002-05-19T15:21:36.123Z"),
        ("2002-05-19", "2002-05-19T00:00:00Z"),
        ("2002-05", "2002-05-01T00:00:00Z"),
        ("2002", "2002-01-01T00:00:00Z"),
        ("Wed, 29 Feb 2024 12:00:00 GMT", "2024-02-29T12:00:00Z"),
    ])
    func parsesFeedDates(_ text: String, _ iso: String) {
        #expect(FeedDate.normalized(text) == iso, "\(text)")
    }

    @Test(arguments: [
        "", "bogus", "31 Jun 2020", "29 Feb 2023 10:00 GMT", "Sun, 19 May 2002 25:00:00 GMT", "2002-13-01",
        "2002-02-30",
        "Sun, 19 Foo 2002 15:21:36 GMT", "Sun, 19 May 2002 15:21:36 XYZ", "19 May", "tomorrow at noon",
        String(repeating: "9", count: 200),
    ])
    func anUnreadableDateIsNil(_ text: String) {
        #expect(FeedDate.parse(text) == nil, "\(text)")
    }

    /// RFC 3339 with more than three fraction digits once crashed the core parser (a range built
    /// backwards); job files and plugin replies go through it.
    @Test func coreRFC3339TakesLongFractions() {
        #expect(RFC3339.parse("2026-01-01T00:00:00.123456Z") == 1_767_225_600_123)
    }
}
