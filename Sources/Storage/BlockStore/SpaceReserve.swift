#if canImport(Glibc)
import Glibc
#endif
import Locking
import Synchronization

/// Keeps new data from filling the file system, so that a full disk never costs the repository
/// its ability to open, to be read, or to be cleaned (SQLite's and LevelDB's out-of-space rule:
/// running out is an error for the write, never damage).
///
/// Two margins of `bytes` each:
/// - a preallocated file (`reserve` in the repository) that is given back when the disk is full
///   anyway (another process filled it, or LevelDB itself hit ENOSPC), and before an open that
///   finds less than `bytes` free: LevelDB's recovery writes a table from its log before it
///   serves anything;
/// - the guard: a write of block data is refused (`BlockStoreError.noSpace`, HTTP 507) when it
///   would leave less than `bytes` free, so pins, deletions, garbage collection and LevelDB's
///   compactions always have room.
/// The file is made again once there is room for it and the guard's margin after it.
public final class SpaceReserve: Sendable {
    /// The repository directory (the reserve file's home, and the file system measured).
    public let directory: String
    public let bytes: UInt64
    private let file: String
    /// Serialises making and giving back the file.
    private let lock = Mutex(())
    /// Free bytes as last measured, less what was written since, and when: a write far from the
    /// margin is let through without a statvfs (small puts come by the thousand per second).
    private let estimate = Mutex<(free: UInt64, at: ContinuousClock.Instant)?>(nil)

    public init(directory: String, bytes: UInt64) {
        self.directory = directory
        self.bytes = bytes
        file = directory + "/reserve"
    }

    /// Bytes an unprivileged writer may still use on the file system holding `path`.
    public static func freeBytes(_ path: String) -> UInt64? {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return nil }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize)
    }

    public var freeBytes: UInt64 { Self.freeBytes(directory) ?? 0 }

    /// Whether the reserve file is in place.
    public var isHeld: Bool { access(file, F_OK) == 0 }

    /// Gives the reserve file's space back (the disk is full: what must be written can be).
    public func release() {
        lock.locked { _ in _ = unlink(file) }
        estimate.locked { $0 = nil }
    }

    /// Before the repository is opened: the reserve goes when less than `bytes` is free.
    public func prepareForOpen() {
        guard bytes > 0, freeBytes < bytes else { return }
        release()
    }

    /// Throws `noSpace` when writing `count` bytes of data would leave less than `bytes` free;
    /// makes the reserve file again when there is room for it and the margin.
    public func check(writing count: UInt64) throws {
        guard bytes > 0 else { return }
        let now = ContinuousClock.now
        let quick = estimate.locked { e -> Bool in
            guard let current = e, now - current.at < .seconds(1), current.free >= count + 4 * bytes else { return false }
            e = (current.free - count, current.at)
            return true
        }
        if quick { return }
        let free = freeBytes
        estimate.locked { $0 = (free - min(free, count), now) }
        if !isHeld && free >= 3 * bytes + count { hold() }
        let after = isHeld ? free : free - min(free, bytes)
        guard after >= count + bytes else {
            throw BlockStoreError.noSpace(
                "no space for \(count) more bytes: \(free) bytes free on the file system of \(directory), \(bytes) kept for the repository's own writes (free some with `qstore repo gc`, or make room)")
        }
    }

    /// Makes the reserve file (preallocated, so it really holds the space).
    func hold() {
        lock.locked { _ in
            guard access(file, F_OK) != 0 else { return }
            let fd = open(file + ".tmp", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return }
            let ok = posix_fallocate(fd, 0, off_t(bytes)) == 0 && fsync(fd) == 0
            close(fd)
            if ok { _ = rename(file + ".tmp", file) } else { _ = unlink(file + ".tmp") }
        }
    }
}
