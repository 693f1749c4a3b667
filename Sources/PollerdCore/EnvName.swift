/// The one rule for environment variable names in pollerd (job `env`, `inherit_env`, `${NAME}`
/// placeholders): POSIX's portable form, a letter or `_` first, then letters, digits or `_`,
/// ASCII only. Lower case is allowed (POSIX reserves upper case for the system, not the shell).
public enum EnvName {
    /// True when `name` is a valid environment variable name.
    public static func isValid(_ name: Substring) -> Bool {
        var scalars = name.unicodeScalars.makeIterator()
        guard let first = scalars.next(), first == "_" || isLetter(first) else { return false }
        while let c = scalars.next() {
            guard c == "_" || isLetter(c) || ("0"..."9").contains(c) else { return false }
        }
        return true
    }

    /// True when `name` is a valid environment variable name.
    public static func isValid(_ name: String) -> Bool { isValid(name[...]) }

    private static func isLetter(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c)
    }
}
