import Foundation

/// A directory under the system temporary folder, removed when the value is released.
final class TemporaryDirectory: @unchecked Sendable {
    // Immutable after init; removal happens once in deinit.
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("qstore-test-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
