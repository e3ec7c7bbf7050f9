import Backup
import Foundation

// The wire types of `/q/v1/backups` (daemon and CLI share them).

/// A backup set, as `backup ls` and a finished `backup create` show it.
public struct BackupSetInfo: Codable, Sendable, Equatable {
    public var id: String
    public var complete: Bool
    /// Why the set cannot be used (incomplete, an unreadable manifest).
    public var problem: String?
    public var parent: String?
    public var created: String?
    public var node: String?
    public var blocks: UInt64?
    public var bytes: UInt64?
    public var parts: Int?
    public var pins: Int?
    public var heads: Int?
    /// The audit log's size at the set's checkpoint.
    public var auditSize: UInt64?
    /// The `--pins` filter the set was made with (absent: the whole repository).
    public var selection: String?

    public init(_ s: BackupDirectory.SetInfo) {
        self.init(id: s.id, manifest: s.manifest)
        problem = s.problem
    }

    public init(id: String, manifest m: BackupManifest?) {
        self.id = id
        complete = m != nil
        parent = m?.parent
        created = m?.created
        node = m?.node
        blocks = m?.blocks
        bytes = m?.bytes
        parts = m?.parts.count
        pins = m?.pins.count
        heads = m?.heads.count
        auditSize = m?.audit?.size
        selection = m?.selection
    }
}

public struct BackupConflictInfo: Codable, Sendable, Equatable {
    public var id: String
    public var restoredAs: String
}

public struct BackupFailureInfo: Codable, Sendable, Equatable {
    /// A pin id or a pointer (`type/key`).
    public var what: String
    public var error: String
}

/// What a restore did.
public struct BackupRestoreInfo: Codable, Sendable, Equatable {
    public var sets: [String]
    public var blocks: UInt64
    public var added: UInt64
    public var bytes: UInt64
    public var pinsRestored: Int
    public var pinsPresent: Int
    public var conflicts: [BackupConflictInfo]
    public var pinFailures: [BackupFailureInfo]
    public var headsMerged: Int
    public var headFailures: [BackupFailureInfo]

    public init(sets: [String], blocks: UInt64, added: UInt64, bytes: UInt64, pinsRestored: Int, pinsPresent: Int, conflicts: [(id: String, restoredAs: String)],
                pinFailures: [(id: String, error: String)], headsMerged: Int, headFailures: [(pointer: String, error: String)]) {
        (self.sets, self.blocks, self.added, self.bytes, self.pinsRestored, self.pinsPresent, self.headsMerged) = (sets, blocks, added, bytes, pinsRestored, pinsPresent, headsMerged)
        self.conflicts = conflicts.map { BackupConflictInfo(id: $0.id, restoredAs: $0.restoredAs) }
        self.pinFailures = pinFailures.map { BackupFailureInfo(what: $0.id, error: $0.error) }
        self.headFailures = headFailures.map { BackupFailureInfo(what: $0.pointer, error: $0.error) }
    }
}

/// `POST /q/v1/backups` and `POST /q/v1/backups/restore`.
public struct BackupRequest: Codable, Sendable, Equatable {
    /// create: the directory to write into; restore: the directory to read from.
    public var directory: String
    /// create: only what the newest set's chain lacks.
    public var incremental: Bool?
    /// create: the largest part, bytes.
    public var partSize: UInt64?
    /// restore: the set (default: the newest complete one).
    public var id: String?
    /// create: only the pins this filter matches (`PinSelector`), their heads and DAGs.
    public var pins: String?
    public init(directory: String, incremental: Bool? = nil, partSize: UInt64? = nil, id: String? = nil, pins: String? = nil) {
        (self.directory, self.incremental, self.partSize, self.id, self.pins) = (directory, incremental, partSize, id, pins)
    }
}

/// A long operation the daemon runs: `GET /q/v1/backups/jobs/{id}` until `state` is not `running`.
public struct BackupJob: Codable, Sendable, Equatable {
    public var id: String
    /// `create` or `restore`.
    public var kind: String
    /// `running`, `succeeded` or `failed`.
    public var state: String
    public var directory: String
    public var started: String
    public var finished: String?
    /// Blocks and bytes done so far.
    public var blocks: UInt64
    public var bytes: UInt64
    public var created: BackupSetInfo?
    public var restored: BackupRestoreInfo?
    public var error: String?
    public init(id: String, kind: String, directory: String, started: String) {
        (self.id, self.kind, self.directory, self.started) = (id, kind, directory, started)
        state = "running"
        blocks = 0
        bytes = 0
    }
}

/// `GET /q/v1/backups?directory=`.
public struct BackupList: Codable, Sendable, Equatable {
    public var directory: String
    public var sets: [BackupSetInfo]
    public init(directory: String, sets: [BackupSetInfo]) { (self.directory, self.sets) = (directory, sets) }
}
