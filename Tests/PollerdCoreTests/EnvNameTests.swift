import PollerdCore
import Testing

/// The one rule for environment variable names: a letter or `_`, then letters, digits or `_`.
@Suite struct EnvNameTests {
    @Test(arguments: [
        "API_KEY", "AWS_REGION", "API_URL", "API_TOKEN", "B", "C2", "DB_HOST", "EDITOR", "F_", "_", "_X1", "path",
        "Home", "a1_b2", "Z9",
    ])
    func validNames(_ name: String) {
        #expect(EnvName.isValid(name))
    }

    @Test(arguments: ["", "1ABC", "9", "A-B", "A B", "A.B", "A=B", "É", "ÄPI", "A$", "-A", "A\u{0}", "ÅWS"])
    func invalidNames(_ name: String) {
        #expect(!EnvName.isValid(name))
    }

    /// Every first letter, upper and lower case (the old rule refused A–F).
    @Test func everyLetterMayStartAName() {
        for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" {
            #expect(EnvName.isValid("\(c)X"), "\(c)")
        }
    }
}
