public import PollerdCore

extension StateStore {
    /// Commits one tick (a batch of one); false when it was fenced off.
    public func commitTick(_ tick: TickCommit, nowMs: Int64) async throws -> Bool {
        let answers = try await commit([tick], nowMs: nowMs)
        return answers.count == 1 && answers[0] != nil
    }
}
