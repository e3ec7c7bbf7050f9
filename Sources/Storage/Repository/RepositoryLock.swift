#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The repository's process lock: an exclusive `flock` on `repo.lock`, which the
/// kernel releases when the holder exits (even by `kill -9`), so a stale lock
/// cannot outlive its process. The holder writes who it is into the file, so a
/// second process can name it in its error.
final class RepositoryLock: Sendable {
    let descriptor: Int32

    init(path: String, purpose: String) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RepositoryError.io("open \(path)", errno) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw RepositoryError.locked(path: path, holder: holder.isEmpty ? "another process" : holder)
        }
        let info = "pid \(getpid()) (\(purpose)) since \(Self.utcNow())\n"
        _ = ftruncate(fd, 0)
        _ = info.withCString { pwrite(fd, $0, strlen($0), 0) }
        descriptor = fd
    }

    /// The time now as `YYYY-MM-DDTHH:MM:SSZ`, by the C library: Foundation's date formatters load
    /// ICU's calendar and time zone data, megabytes of resident memory in every process.
    static func utcNow() -> String {
        var now = time(nil)
        var parts = tm()
        guard gmtime_r(&now, &parts) != nil else { return "\(now) s after 1970" }
        var text = [CChar](repeating: 0, count: 32)
        let n = strftime(&text, text.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: text.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        _ = ftruncate(descriptor, 0)
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
