import PollerdCore
import Testing

@Suite struct CronExpressionTests {
    @Test func fiveFieldStepsMinutes() throws {
        #expect(
            try nextCron("*/15 * * * *", from: "2026-01-01T00:07:00Z", count: 4)
                == ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z"])
    }

    @Test func strictlyAfterFrom() throws {
        #expect(try nextCron("0 * * * *", from: "2026-01-01T05:00:00Z") == ["2026-01-01T06:00:00Z"])
        #expect(try nextCron("0 * * * *", from: "2026-01-01T04:59:59.999Z") == ["2026-01-01T05:00:00Z"])
    }

    @Test func sixFieldSecondsFirst() throws {
        #expect(
            try nextCron("*/20 * * * * *", from: "2026-01-01T00:00:05Z", count: 3)
                == ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"])
        // Weekdays at noon: from Friday 13:00 the next is Monday.
        #expect(try nextCron("0 0 12 * * MON-FRI", from: "2026-01-02T13:00:00Z") == ["2026-01-05T12:00:00Z"])
    }

    @Test func namesAreCaseInsensitive() throws {
        // dom is '*', so only the day-of-week counts: Sundays in January and March.
        #expect(
            try nextCron("0 9 * jan,MAR Sun", from: "2026-01-01T00:00:00Z", count: 2)
                == ["2026-01-04T09:00:00Z", "2026-01-11T09:00:00Z"])
        #expect(try nextCron("0 9 * JAN,MAR SUN", from: "2026-01-31T10:00:00Z") == ["2026-03-01T09:00:00Z"])
    }

    @Test func rangeWithStepAndList() throws {
        #expect(
            try nextCron("0 10-20/5 * * *", from: "2026-01-01T00:00:00Z", count: 4)
                == ["2026-01-01T10:00:00Z", "2026-01-01T15:00:00Z", "2026-01-01T20:00:00Z", "2026-01-02T10:00:00Z"])
        #expect(
            try nextCron("5,10 0 * * *", from: "2026-01-01T00:06:00Z", count: 2)
                == ["2026-01-01T00:10:00Z", "2026-01-02T00:05:00Z"])
        // A start with a step and no end runs to the field's maximum.
        #expect(
            try nextCron("50/5 * * * *", from: "2026-01-01T00:00:00Z", count: 3)
                == ["2026-01-01T00:50:00Z", "2026-01-01T00:55:00Z", "2026-01-01T01:50:00Z"])
    }

    @Test func questionMark() throws {
        // 2026-01-01 is a Thursday; the next Wednesday is the 7th.
        #expect(try nextCron("0 0 0 ? * 3", from: "2026-01-01T00:00:00Z") == ["2026-01-07T00:00:00Z"])
        #expect(try nextCron("0 0 0 15 * ?", from: "2026-01-01T00:00:00Z") == ["2026-01-15T00:00:00Z"])
    }

    @Test func lastDayOfMonth() throws {
        #expect(
            try nextCron("0 0 L * *", from: "2026-02-01T00:00:00Z", count: 2) == [
                "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z",
            ])
        #expect(try nextCron("0 0 L * *", from: "2028-02-01T00:00:00Z") == ["2028-02-29T00:00:00Z"])
        #expect(try nextCron("0 0 L 4 *", from: "2026-01-01T00:00:00Z") == ["2026-04-30T00:00:00Z"])
    }

    @Test func lastWeekdayOfMonth() throws {
        // Last Friday of January 2026 is the 30th, of February the 27th.
        #expect(
            try nextCron("0 0 * * 5L", from: "2026-01-01T00:00:00Z", count: 2) == [
                "2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z",
            ])
        #expect(try nextCron("0 0 * * FRIL", from: "2026-01-01T00:00:00Z") == ["2026-01-30T00:00:00Z"])
    }

    @Test func nthWeekdayOfMonth() throws {
        // Second Monday: 2026-01-12, 2026-02-09.
        #expect(
            try nextCron("0 0 * * 1#2", from: "2026-01-01T00:00:00Z", count: 2) == [
                "2026-01-12T00:00:00Z", "2026-02-09T00:00:00Z",
            ])
        #expect(try nextCron("0 0 * * MON#2", from: "2026-01-01T00:00:00Z") == ["2026-01-12T00:00:00Z"])
        // A fifth Monday exists only in some months: March 2026 has Mondays 2, 9, 16, 23, 30.
        #expect(try nextCron("0 0 * * 1#5", from: "2026-01-01T00:00:00Z") == ["2026-03-30T00:00:00Z"])
    }

    @Test func macros() throws {
        let from = "2026-01-01T00:07:00Z"
        #expect(try nextCron("@hourly", from: from) == ["2026-01-01T01:00:00Z"])
        #expect(try nextCron("@daily", from: from) == ["2026-01-02T00:00:00Z"])
        #expect(try nextCron("@midnight", from: from) == ["2026-01-02T00:00:00Z"])
        #expect(try nextCron("@weekly", from: from) == ["2026-01-04T00:00:00Z"])
        #expect(try nextCron("@monthly", from: from) == ["2026-02-01T00:00:00Z"])
        #expect(try nextCron("@yearly", from: from) == ["2027-01-01T00:00:00Z"])
        #expect(try nextCron("@annually", from: from) == ["2027-01-01T00:00:00Z"])
    }

    @Test func sundayIsZeroAndSeven() throws {
        #expect(try nextCron("0 0 * * 7", from: "2026-01-01T00:00:00Z") == ["2026-01-04T00:00:00Z"])
        #expect(try nextCron("0 0 * * 0", from: "2026-01-01T00:00:00Z") == ["2026-01-04T00:00:00Z"])
        #expect(
            try nextCron("0 0 * * 5-7", from: "2026-01-02T01:00:00Z", count: 3)
                == ["2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-09T00:00:00Z"])
    }

    @Test func vixieOrWhenBothDayFieldsRestricted() throws {
        // The 13th or any Friday.
        #expect(
            try nextCron("0 0 13 * FRI", from: "2026-01-01T00:00:00Z", count: 4)
                == ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z", "2026-01-16T00:00:00Z"])
        // A day field starting with '*' counts as unrestricted (as in Vixie cron): Mondays only.
        #expect(
            try nextCron("0 0 */2 * MON", from: "2026-01-01T00:00:00Z", count: 2) == [
                "2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z",
            ])
    }

    @Test func impossibleDateNeverFires() throws {
        let e = try CronExpression("0 0 30 2 *")
        #expect(e.next(afterMs: ms("2026-01-01T00:00:00Z"), in: .utc) == nil)
    }

    @Test(arguments: [
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("0 0 32 * *", "day-of-month"),
        ("0 0 0 * *", "day-of-month"),
        ("0 0 * 13 *", "month"),
        ("0 0 * FOO *", "month"),
        ("0 0 * * 8", "day-of-week"),
        ("0 0 * * MON#6", "day-of-week"),
        ("0 0 * * XL", "day-of-week"),
        ("*/0 * * * *", "minute"),
        ("5-2 * * * *", "minute"),
        ("61 * * * * *", "second"),
        ("? * * * *", "minute"),
        ("1,,2 * * * *", "minute"),
        ("* * * *", "expression"),
        ("* * * * * * *", "expression"),
        ("@every5m", "expression"),
        ("", "expression"),
    ])
    func invalidExpressionNamesTheField(expr: String, field: String) {
        #expect {
            _ = try CronExpression(expr)
        } throws: { error in
            (error as? CronExpression.ParseError)?.field == field
        }
    }
}
