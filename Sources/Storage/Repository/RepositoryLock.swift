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
        let info = "pid \(getpid()) (\(purpose)) since \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = ftruncate(fd, 0)
        _ = info.withCString { pwrite(fd, $0, strlen($0), 0) }
        descriptor = fd
    }

    deinit {
        _ = ftruncate(descriptor, 0)
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}
