import Foundation

/// The environment of a child process a test starts: what the test sets, plus the variables that
/// steer sanitizers and the Swift backtracer, passed through from the test run (`make test-asan`
/// sets them; a child built with the sanitizer must read the same options).
public enum ChildEnvironment {
    public static let passedThrough = ["ASAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS", "SWIFT_BACKTRACE"]

    public static func with(_ environment: [String: String]) -> [String: String] {
        var out = environment
        let parent = ProcessInfo.processInfo.environment
        for k in passedThrough where out[k] == nil { out[k] = parent[k] }
        return out
    }
}
