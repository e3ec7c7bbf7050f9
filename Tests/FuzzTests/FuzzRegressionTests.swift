import Foundation
import FuzzTargets
import Testing
import TestSupport

/// Every seed of Fuzz/corpus and every input a fuzzer ever crashed on (Fuzz/crashers) through its
/// target, on each test run: a crash fixed stays fixed, and a target broken by a change (an
/// invariant that no longer holds for a seed) fails here before anyone fuzzes. A trap stops the
/// test run with the target's message.
@Suite struct FuzzRegressionTests {
    static let root = Fixtures.repositoryRoot + "/Fuzz"

    static func inputs(_ folder: String) -> [(target: String, file: String)] {
        let fm = FileManager.default
        let dir = root + "/" + folder
        return ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted().flatMap { target -> [(String, String)] in
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: dir + "/" + target, isDirectory: &isDir), isDir.boolValue else { return [] }
            return ((try? fm.contentsOfDirectory(atPath: dir + "/" + target)) ?? []).sorted().map { (target, dir + "/" + target + "/" + $0) }
        }
    }

    @Test func everySeedAndCrasherPassesItsTarget() throws {
        let all = Self.inputs("corpus") + Self.inputs("crashers")
        #expect(!all.isEmpty, "no seeds under \(Self.root)/corpus: Scripts/fuzz.sh seeds makes them")
        var ran: [String: Int] = [:]
        for (target, file) in all {
            guard let t = FuzzTargets.target(target) else {
                Issue.record("\(file): no fuzz target \(target)")
                continue
            }
            t.run(Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            ran[target, default: 0] += 1
        }
        // Every target has seeds to start from.
        for t in FuzzTargets.all { #expect(ran[t.name, default: 0] > 0, "no seeds for \(t.name)") }
    }
}
