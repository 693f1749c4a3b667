/// Proleptic Gregorian calendar arithmetic on plain integers (Howard Hinnant's algorithms).
public enum CivilDate {
    /// Days since 1970-01-01 for a civil date.
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date for a count of days since 1970-01-01.
    public static func civilFromDays(_ z0: Int64) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(m <= 2 ? y + 1 : y), Int(m), Int(d))
    }

    /// True in a Gregorian leap year.
    public static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    /// Days in a month of a year.
    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Day of the week, 0 = Sunday.
    public static func weekday(year: Int, month: Int, day: Int) -> Int {
        let d = daysFromCivil(year: year, month: month, day: day)
        return Int(((d % 7) + 11) % 7) // 1970-01-01 was a Thursday (4)
    }
}

/// Local wall-clock fields; `normalize()` carries overflow into the larger fields.
public struct LocalFields: Sendable, Hashable {
    public var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int

    public init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
    }

    /// Carries seconds into minutes, minutes into hours, and so on (only upward overflow).
    public mutating func normalize() {
        if second >= 60 {
            minute += second / 60
            second %= 60
        }
        if minute >= 60 {
            hour += minute / 60
            minute %= 60
        }
        if hour >= 24 {
            day += hour / 24
            hour %= 24
        }
        while month > 12 {
            month -= 12
            year += 1
        }
        while day > CivilDate.daysInMonth(year: year, month: month) {
            day -= CivilDate.daysInMonth(year: year, month: month)
            month += 1
            if month > 12 {
                month = 1
                year += 1
            }
        }
    }

    /// Seconds since the epoch if these fields were UTC.
    public var naiveEpochSeconds: Int64 {
        CivilDate.daysFromCivil(year: year, month: month, day: day) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
    }

    /// Fields of a UTC instant.
    public init(utcEpochSeconds s: Int64) {
        let days = s >= 0 ? s / 86_400 : (s - 86_399) / 86_400
        let rem = Int(s - days * 86_400)
        let (y, m, d) = CivilDate.civilFromDays(days)
        self.init(year: y, month: m, day: d, hour: rem / 3600, minute: (rem % 3600) / 60, second: rem % 60)
    }
}
