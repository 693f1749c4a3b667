import PollerdCore
import Testing

/// The DST rules: a local time skipped by a spring-forward gap fires once, at the first instant
/// after the gap; a local time repeated by a fall-back fires once, at its first occurrence.
@Suite struct DaylightSavingTests {
    // America/New_York 2026: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    @Test func newYorkGapFiresOnceAfterTheGap() throws {
        #expect(
            try nextCron("0 30 2 * * *", tz: "America/New_York", from: "2026-03-07T12:00:00Z", count: 2)
                == ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"])
    }

    @Test func newYorkEveryMinuteInsideTheGapFiresOnce() throws {
        // Every minute of local hour 2: on the 8th that hour does not exist -> once at 03:00 EDT.
        #expect(
            try nextCron("0 * 2 * * *", tz: "America/New_York", from: "2026-03-08T06:00:00Z", count: 2)
                == ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"])
    }

    @Test func newYorkOverlapFiresAtFirstOccurrence() throws {
        #expect(
            try nextCron("0 30 1 * * *", tz: "America/New_York", from: "2026-10-31T12:00:00Z", count: 2)
                == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"])
        // Hourly: 01:00 local happens twice; only the first (EDT) fires.
        #expect(
            try nextCron("0 0 * * * *", tz: "America/New_York", from: "2026-11-01T03:30:00Z", count: 3)
                == ["2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"])
    }

    @Test func newYorkStartInsideSecondPassDoesNotRefire() throws {
        // 06:10Z is 01:10 EST, in the repeated hour; 01:30 already fired at 05:30Z.
        #expect(
            try nextCron("0 30 1 * * *", tz: "America/New_York", from: "2026-11-01T06:10:00Z") == [
                "2026-11-02T06:30:00Z"
            ])
    }

    // Europe/Berlin 2026: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
    @Test func berlinGap() throws {
        #expect(
            try nextCron("0 30 2 * * *", tz: "Europe/Berlin", from: "2026-03-28T12:00:00Z", count: 2)
                == ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"])
    }

    @Test func berlinOverlap() throws {
        #expect(
            try nextCron("0 30 2 * * *", tz: "Europe/Berlin", from: "2026-10-24T12:00:00Z", count: 2)
                == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
    }

    // Australia/Sydney 2026: 2026-10-04 02:00 AEST -> 03:00 AEDT; 2026-04-05 03:00 AEDT -> 02:00 AEST.
    @Test func sydneyGap() throws {
        #expect(
            try nextCron("0 30 2 * * *", tz: "Australia/Sydney", from: "2026-10-03T00:00:00Z", count: 2)
                == ["2026-10-03T16:00:00Z", "2026-10-04T15:30:00Z"])
    }

    @Test func sydneyOverlap() throws {
        #expect(
            try nextCron("0 30 2 * * *", tz: "Australia/Sydney", from: "2026-04-04T00:00:00Z", count: 2)
                == ["2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"])
    }

    @Test func unknownZoneIsRejected() {
        #expect(ZoneRules(identifier: "Mars/Olympus") == nil)
        #expect(ZoneRules(identifier: "EST") == nil)
        #expect(ZoneRules(identifier: "UTC") != nil)
    }
}
