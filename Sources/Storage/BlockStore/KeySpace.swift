import Multiformats

/// The key spaces of the repository's LevelDB, one prefix byte each (DESIGN.md,
/// "Storage"). Spaces that later layers own are reserved here so no two layers
/// can collide.
public enum KeySpace: UInt8, CaseIterable, Sendable {
    /// `D ‖ multihash` → block record (inline bytes, or a pack location).
    case blockData = 0x44  // "D"
    /// `L ‖ multihash ‖ varint(codec)` → the links extracted at put.
    case blockLinks = 0x4c  // "L"
    /// Reference counts (pinning layer).
    case referenceCounts = 0x52  // "R"
    /// Garbage-collection candidates by time (pinning layer).
    case gcCandidates = 0x47  // "G"
    /// Pins (pinning layer).
    case pins = 0x50  // "P"
    /// Qindex heads.
    case qindexHeads = 0x51  // "Q"
    /// Registry indexes.
    case registry = 0x49  // "I"
    /// The audit log head.
    case auditHead = 0x41  // "A"
    /// Replication state.
    case replication = 0x58  // "X"
    /// The event stream: `E ‖ u64(sequence)` → the event (dag-cbor `{t, ts, d}`).
    case events = 0x45  // "E"
    /// Identities, grants, tokens, idempotency records and quota usage (access layer).
    case access = 0x55  // "U"
    /// Repository metadata.
    case meta = 0x4d  // "M"
    /// Qdrive's keyring: `V 01 ‖ file key id ‖ 00 ‖ recipient key id` → the wrapped file key;
    /// `V 02 ‖ owner` → the X25519 public key the node holds for `owner` and its private key sealed
    /// under the node's master key (`keystore/drive-master.key`). Not in backups (erasure must reach it).
    case driveKeys = 0x56  // "V"
    /// Pack-file bookkeeping (block store): `K 01 ‖ u32(pack) ‖ u64(offset)` → bytes of a deleted
    /// entry (dead space), `K 02 ‖ u32(pack)` → a pack retired by compaction, its file to remove.
    case packs = 0x4b  // "K"

    /// The prefix as a key.
    public var prefix: [UInt8] { [rawValue] }

    /// `prefix ‖ bytes`.
    public func key(_ bytes: [UInt8]) -> [UInt8] {
        var k = [rawValue]
        k.append(contentsOf: bytes)
        return k
    }
}
