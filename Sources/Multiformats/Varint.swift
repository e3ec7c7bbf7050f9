/// Unsigned varint (multiformats/unsigned-varint): LEB128, minimal encoding only,
/// at most 9 bytes, so values up to 2^63 - 1.
///
/// Invariants: every encoding produced is minimal; decoding refuses overlong
/// (non-minimal), truncated and over-9-byte input instead of guessing.
public enum Varint {
    /// The longest encoding the spec allows.
    public static let maximumLength = 9
    /// The largest value a 9-byte varint can carry.
    public static let maximumValue: UInt64 = (1 << 63) - 1

    /// The number of bytes `value` takes when encoded.
    @inlinable
    public static func encodedLength(_ value: UInt64) -> Int {
        var v = value >> 7
        var n = 1
        while v != 0 { v >>= 7; n += 1 }
        return n
    }

    /// Appends the minimal encoding of `value` to `bytes`.
    /// - Precondition: `value <= maximumValue` (callers hold codes and lengths, never arbitrary data).
    @inlinable
    public static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        precondition(value <= maximumValue, "varint value above 2^63-1")
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// The minimal encoding of `value`.
    @inlinable
    public static func encode(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedLength(value))
        append(value, to: &out)
        return out
    }

    /// Decodes one varint at the start of `bytes`; returns the value and how many bytes it used.
    @inlinable
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(VarintError) -> (value: UInt64, length: Int) {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var i = 0
        while true {
            guard i < bytes.count else { throw i == 0 ? .empty : .truncated }
            guard i < maximumLength else { throw .tooLong }
            let b = bytes[i]
            value |= UInt64(b & 0x7f) << shift
            i += 1
            if b & 0x80 == 0 {
                // A final byte of zero after the first means the encoding was padded.
                if b == 0 && i > 1 { throw .notMinimal }
                return (value, i)
            }
            shift += 7
        }
    }

    /// Decodes one varint at `offset` in `bytes`.
    @inlinable
    public static func decode(_ bytes: [UInt8], at offset: Int = 0) throws(VarintError) -> (value: UInt64, length: Int) {
        guard offset <= bytes.count else { throw .empty }
        return try bytes.withUnsafeBytesTyped { (raw) throws(VarintError) in
            try decode(UnsafeRawBufferPointer(rebasing: raw[offset...]))
        }
    }
}

/// What was wrong with a varint.
public enum VarintError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No bytes at all where a varint was expected.
    case empty
    /// The input ended in the middle of a varint.
    case truncated
    /// More than 9 bytes (the spec's limit).
    case tooLong
    /// The varint had superfluous trailing zero groups (non-minimal encoding).
    case notMinimal

    public var description: String {
        switch self {
        case .empty: "varint expected, no bytes left"
        case .truncated: "varint truncated"
        case .tooLong: "varint longer than 9 bytes"
        case .notMinimal: "varint is not minimally encoded"
        }
    }
}
