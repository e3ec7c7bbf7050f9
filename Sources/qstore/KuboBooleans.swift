/// Kubo's boolean options: `--pin` alone means `--pin=true` (and `--pin=false` turns one off),
/// so `qstore add --raw-leaves FILE` and `qstore block put --pin FILE` work as `ipfs` takes them.
/// ArgumentParser's options always take a value, so a bare one is given `=true` before parsing,
/// for the options of this table only (a flag of the same name elsewhere, such as `add
/// --recursive`, is left alone); `--pin true` still parses as ArgumentParser reads it.
enum KuboBooleans {
    /// Command path → its options that take true or false: each spelling (long, and short where
    /// the command has one) → the long name.
    static let options: [[String]: [String: String]] = [
        ["add"]: ["--pin": "pin", "--raw-leaves": "raw-leaves"],
        ["block", "put"]: ["--pin": "pin"],
        ["dag", "put"]: ["--pin": "pin"],
        ["dag", "import"]: ["--pin-roots": "pin-roots"],
        ["name", "publish"]: ["--resolve": "resolve"],
        ["name", "resolve"]: ["--recursive": "recursive", "-r": "recursive"],
        ["pin", "add"]: ["--recursive": "recursive"],
        ["pin", "rm"]: ["--recursive": "recursive"],
        ["pin", "update"]: ["--unpin": "unpin"],
    ]

    /// `arguments` (without the program's name) with each bare boolean option of its command
    /// given `=true`.
    static func rewrite(_ arguments: [String]) -> [String] {
        let words = Array(arguments.prefix { !$0.hasPrefix("-") }.prefix(2))
        guard let names = options[words] ?? options[Array(words.prefix(1))] else { return arguments }
        var out = arguments
        for i in out.indices {
            if out[i] == "--" { break }
            let next = i + 1 < out.count ? out[i + 1] : nil
            if let name = names[out[i]], next != "true" && next != "false" { out[i] = "--\(name)=true" }
        }
        return out
    }
}
