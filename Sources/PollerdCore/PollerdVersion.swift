/// pollerd's version, as the CLI prints it and the HTTP kinds send it in `User-Agent`.
public enum PollerdVersion {
    public static let string = "0.9.0"
}
