import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// fsyncs a directory, so the names made, renamed or removed in it are on disk (best effort: a
/// directory that cannot be opened is left as it is).
public func syncDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if fd >= 0 {
        _ = fsync(fd)
        _ = close(fd)
    }
}
