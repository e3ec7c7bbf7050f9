import Multiformats
import Storage

/// The pin key space (`P`), one sub-space per index. Every pin change writes all of them
/// in the transaction of the change.
///
/// - `P 01 ‖ id` → the pin record (DAG-CBOR), in creation order;
/// - `P 02 ‖ multihash ‖ id` → `[type, status, CID version] ‖ varint(codec) ‖ name`: "is X pinned,
///   and by what" is one seek, and `pin ls` reads this index alone (no record decoding);
/// - `P 03 ‖ u64(expires) ‖ id` → pins that end by themselves, soonest first;
/// - `P 04 ‖ id` → queued pins, waiting for blocks;
/// - `P 05 ‖ name ‖ 00 ‖ id` → named pins by name;
/// - `P 06 ‖ owner ‖ 00 ‖ id` → u64(size): owned pins by owner, with the bytes each holds (quotas).
///
/// Invariant: a record exists iff its `02` entry does, and its `03`/`04`/`05` entries exist
/// iff it has an expiry / is queued / has a name / has an owner (checked by `CountVerifier`).
enum PinIndex {
    static let records: UInt8 = 1, byMultihash: UInt8 = 2, byExpiry: UInt8 = 3, queued: UInt8 = 4, byName: UInt8 = 5, byOwner: UInt8 = 6

    static func key(_ sub: UInt8, _ parts: [UInt8]...) -> [UInt8] {
        var k = KeySpace.pins.key([sub])
        for p in parts { k.append(contentsOf: p) }
        return k
    }

    static func recordKey(_ id: PinID) -> [UInt8] { key(records, id.bytes) }
    static func multihashPrefix(_ mh: Multihash) -> [UInt8] { key(byMultihash, mh.bytes) }
    static func multihashKey(_ mh: Multihash, _ id: PinID) -> [UInt8] { key(byMultihash, mh.bytes, id.bytes) }
    static func expiryKey(_ t: UInt64, _ id: PinID) -> [UInt8] { key(byExpiry, bigEndian(t), id.bytes) }
    static func queuedKey(_ id: PinID) -> [UInt8] { key(queued, id.bytes) }
    static func namePrefix(_ name: String) -> [UInt8] { key(byName, Array(name.utf8), [0]) }
    static func nameKey(_ name: String, _ id: PinID) -> [UInt8] { key(byName, Array(name.utf8), [0], id.bytes) }
    static func ownerPrefix(_ owner: String) -> [UInt8] { key(byOwner, Array(owner.utf8), [0]) }
    static func ownerKey(_ owner: String, _ id: PinID) -> [UInt8] { key(byOwner, Array(owner.utf8), [0], id.bytes) }

    static func bigEndian(_ t: UInt64) -> [UInt8] { withUnsafeBytes(of: t.bigEndian) { Array($0) } }

    static func typeCode(_ t: PinType) -> UInt8 { t == .recursive ? 0 : 1 }

    /// Adds every entry of `pin` to `batch`.
    static func stagePut(_ pin: Pin, into batch: WriteBatch) {
        batch.put(recordKey(pin.id), pin.encode())
        batch.put(multihashKey(pin.cid.multihash, pin.id), listingValue(pin))
        if let e = pin.expires { batch.put(expiryKey(e, pin.id), []) }
        if pin.status == .queued { batch.put(queuedKey(pin.id), []) }
        if let n = pin.name { batch.put(nameKey(n, pin.id), []) }
        if let o = pin.owner { batch.put(ownerKey(o, pin.id), bigEndian(pin.size ?? 0)) }
    }

    /// Adds the removal of every entry of `pin` to `batch`.
    static func stageDelete(_ pin: Pin, from batch: WriteBatch) {
        batch.delete(recordKey(pin.id))
        batch.delete(multihashKey(pin.cid.multihash, pin.id))
        if let e = pin.expires { batch.delete(expiryKey(e, pin.id)) }
        if pin.status == .queued { batch.delete(queuedKey(pin.id)) }
        if let n = pin.name { batch.delete(nameKey(n, pin.id)) }
        if let o = pin.owner { batch.delete(ownerKey(o, pin.id)) }
    }

    static func listingValue(_ pin: Pin) -> [UInt8] {
        var v: [UInt8] = [typeCode(pin.type), UInt8(PinStatus.allCases.firstIndex(of: pin.status)!), UInt8(pin.cid.version)]
        Varint.append(pin.cid.codec.code, to: &v)
        v.append(contentsOf: (pin.name ?? "").utf8)
        return v
    }

    /// A `02` entry as (CID, type, status, name).
    static func parseListing(_ key: [UInt8], _ value: [UInt8]) throws -> (cid: CID, type: PinType, status: PinStatus, name: String) {
        guard key.count > 2 + 16, value.count >= 4, value[1] < PinStatus.allCases.count else { throw PinningError.corrupted("malformed pin index entry") }
        let mh = try Multihash(bytes: Array(key[2..<(key.count - 16)]))
        let (codec, n) = try Varint.decode(value, at: 3)
        var cid = CID(codec: Multicodec(codec), multihash: mh)
        if value[2] == 0 { cid = try cid.toV0() }
        return (cid, value[0] == 0 ? .recursive : .direct, PinStatus.allCases[Int(value[1])], String(decoding: value[(3 + n)...], as: UTF8.self))
    }

    /// The pin ID at the end of a key.
    static func trailingID(_ key: [UInt8]) -> PinID? { key.count >= 16 ? PinID(bytes: Array(key.suffix(16))) : nil }
}
