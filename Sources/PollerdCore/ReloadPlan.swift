/// What a reload does to the running jobs. Every list is sorted.
public struct ReloadPlan: Sendable, Equatable, Codable {
    public var add: [String] = []
    public var replace: [String] = []
    public var remove: [String] = []
    public var keep: [String] = []

    public init(add: [String] = [], replace: [String] = [], remove: [String] = [], keep: [String] = []) {
        self.add = add
        self.replace = replace
        self.remove = remove
        self.keep = keep
    }

    /// The plan from jobs running now (id → definition fingerprint) to the jobs of a new file.
    public static func between(current: [String: String], next: [(id: String, fingerprint: String)]) -> ReloadPlan {
        var plan = ReloadPlan()
        var seen = Set<String>()
        for (id, fp) in next {
            seen.insert(id)
            switch current[id] {
            case nil: plan.add.append(id)
            case fp?: plan.keep.append(id)
            default: plan.replace.append(id)
            }
        }
        plan.remove = current.keys.filter { !seen.contains($0) }
        plan.add.sort()
        plan.replace.sort()
        plan.remove.sort()
        plan.keep.sort()
        return plan
    }

    /// True when the plan changes nothing.
    public var isEmpty: Bool { add.isEmpty && replace.isEmpty && remove.isEmpty }
}
