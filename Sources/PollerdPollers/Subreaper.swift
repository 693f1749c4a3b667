import CPollerdSpawn

/// `prctl(PR_SET_CHILD_SUBREAPER)`, through C (Swift does not import variadic `prctl`).
enum Subreaper {
    static func enable() -> Bool { cpollerd_set_child_subreaper() == 0 }
}
