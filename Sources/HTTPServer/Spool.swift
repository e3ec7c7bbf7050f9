import Foundation
import Hummingbird

/// A request body written to a temporary file as it arrives.
struct Spool {
    let path: String

    static func write(_ body: RequestBody, directory: String, limit: Int) async throws -> Spool {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/upload-\(UUID().uuidString)"
        guard FileManager.default.createFile(atPath: path, contents: nil) else { throw RequestError(.internalServerError, "cannot create \(path)") }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var total = 0
        do {
            for try await chunk in body {
                total += chunk.readableBytes
                guard total <= limit else { throw BodyTooLarge(limit: limit) }
                try handle.write(contentsOf: Data(buffer: chunk))
            }
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        return Spool(path: path)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
