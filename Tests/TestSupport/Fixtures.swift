import Foundation

/// Where the shared test vectors live: `$QSTORE_FIXTURES`, else
/// `../shared/fixtures` beside the repository. Tests list the files they find
/// there and never assume how many there are.
public enum Fixtures {
    /// The project's top directory.
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The fixture root directory.
    public static let root: URL = {
        if let env = ProcessInfo.processInfo.environment["QSTORE_FIXTURES"], !env.isEmpty {
            return URL(fileURLWithPath: env, isDirectory: true)
        }
        // This file is Tests/TestSupport/Fixtures.swift; the repository is two levels up.
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repo.deletingLastPathComponent().appendingPathComponent("shared/fixtures", isDirectory: true)
    }()

    /// A path under the fixture root.
    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    /// Every file under `relative` (recursively) whose name ends with `suffix`, sorted.
    public static func files(under relative: String, suffix: String) -> [URL] {
        let base = url(relative)
        guard let e = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil) else { return [] }
        var out: [URL] = []
        for case let u as URL in e where u.lastPathComponent.hasSuffix(suffix) { out.append(u) }
        return out.sorted { $0.path < $1.path }
    }

    /// The immediate subdirectories of `relative`, sorted by name.
    public static func directories(under relative: String) -> [URL] {
        let base = url(relative)
        let items = (try? FileManager.default.contentsOfDirectory(at: base, includingPropertiesForKeys: [.isDirectoryKey])) ?? []
        return items.filter { (try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// The bytes of a file.
    public static func bytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }

    /// A fixture file parsed as JSON.
    public static func json(_ url: URL) throws -> Any { try JSONSerialization.jsonObject(with: Data(contentsOf: url), options: [.fragmentsAllowed]) }
}

/// A small deterministic random generator (SplitMix64) so fuzz tests are reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    /// A generator starting from `seed`.
    public init(seed: UInt64) { state = seed }
    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) } }
}

/// Byte-level mutations of a valid input, for decoder robustness tests.
public enum Mutations {
    /// `count` mutated copies of `input`: flipped bits, changed, inserted and removed bytes, truncations.
    public static func of(_ input: [UInt8], count: Int, using rng: inout SeededGenerator) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for _ in 0..<count {
            var m = input
            let edits = Int.random(in: 1...3, using: &rng)
            for _ in 0..<edits {
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !m.isEmpty:
                    let i = Int.random(in: 0..<m.count, using: &rng)
                    m[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                case 1 where !m.isEmpty:
                    m[Int.random(in: 0..<m.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                case 2:
                    m.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...m.count, using: &rng))
                case 3 where !m.isEmpty:
                    m.remove(at: Int.random(in: 0..<m.count, using: &rng))
                default:
                    m = Array(m.prefix(Int.random(in: 0...m.count, using: &rng)))
                }
            }
            out.append(m)
        }
        return out
    }
}
