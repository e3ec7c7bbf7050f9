/// A multibase encoding: a prefix character followed by the bytes in that base.
/// Every encoding of the multibase table is here (`identity`, the NUL prefix,
/// is binary and has no text form).
public enum Multibase: String, CaseIterable, Sendable {
    case base2, base8, base10
    case base16, base16upper
    case base32hex, base32hexupper, base32hexpad, base32hexpadupper
    case base32, base32upper, base32pad, base32padupper, base32z
    case base36, base36upper
    case base45
    case base58btc, base58flickr
    case base64, base64pad, base64url, base64urlpad
    case proquint
    case base256emoji

    /// The prefix character of the encoding.
    public var prefix: Character {
        switch self {
        case .base2: "0"
        case .base8: "7"
        case .base10: "9"
        case .base16: "f"
        case .base16upper: "F"
        case .base32hex: "v"
        case .base32hexupper: "V"
        case .base32hexpad: "t"
        case .base32hexpadupper: "T"
        case .base32: "b"
        case .base32upper: "B"
        case .base32pad: "c"
        case .base32padupper: "C"
        case .base32z: "h"
        case .base36: "k"
        case .base36upper: "K"
        case .base45: "R"
        case .base58btc: "z"
        case .base58flickr: "Z"
        case .base64: "m"
        case .base64pad: "M"
        case .base64url: "u"
        case .base64urlpad: "U"
        case .proquint: "p"
        case .base256emoji: "🚀"
        }
    }

    /// The encoding with the given prefix character.
    public init?(prefix: Character) {
        guard let m = Multibase.byPrefix[prefix] else { return nil }
        self = m
    }

    /// `bytes` encoded in this base, prefix included.
    public func encode(_ bytes: some Collection<UInt8>) -> String {
        String(prefix) + encodeWithoutPrefix(bytes)
    }

    /// `bytes` encoded in this base, without the prefix character.
    public func encodeWithoutPrefix(_ bytes: some Collection<UInt8>) -> String {
        switch kind {
        case .bits(let a): a.encode(bytes)
        case .bigNumber(let a): a.encode(bytes)
        case .base45: Base45.encode(bytes)
        case .proquint: Proquint.encode(bytes)
        case .emoji: Base256Emoji.encode(bytes)
        }
    }

    /// Decodes text in this base given without its prefix character.
    public func decodeWithoutPrefix(_ text: Substring) throws(MultibaseError) -> [UInt8] {
        switch kind {
        case .bits(let a): try a.decode(text)
        case .bigNumber(let a): try a.decode(text)
        case .base45: try Base45.decode(text)
        case .proquint: try Proquint.decode(text)
        case .emoji: try Base256Emoji.decode(text)
        }
    }

    /// Decodes multibase text: the prefix names the base.
    public static func decode(_ text: some StringProtocol) throws(MultibaseError) -> (base: Multibase, bytes: [UInt8]) {
        guard let first = text.first else { throw .empty }
        guard let base = Multibase(prefix: first) else { throw .unknownPrefix(first) }
        let rest = Substring(text).dropFirst()
        return (base, try base.decodeWithoutPrefix(rest))
    }

    private enum Kind {
        case bits(BitPackedAlphabet), bigNumber(BigNumberAlphabet), base45, proquint, emoji
    }

    private var kind: Kind { Multibase.kinds[self]! }

    private static let kinds: [Multibase: Kind] = {
        let b32 = "abcdefghijklmnopqrstuvwxyz234567", b32hex = "0123456789abcdefghijklmnopqrstuv"
        let b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return [
            .base2: .bits(BitPackedAlphabet("01", bits: 1)),
            .base8: .bits(BitPackedAlphabet("01234567", bits: 3)),
            .base10: .bigNumber(BigNumberAlphabet("0123456789")),
            .base16: .bits(Base16.lower),
            .base16upper: .bits(Base16.upper),
            .base32hex: .bits(BitPackedAlphabet(b32hex, bits: 5, caseInsensitive: true)),
            .base32hexupper: .bits(BitPackedAlphabet(b32hex.uppercased(), bits: 5, caseInsensitive: true)),
            .base32hexpad: .bits(BitPackedAlphabet(b32hex, bits: 5, padded: true, caseInsensitive: true)),
            .base32hexpadupper: .bits(BitPackedAlphabet(b32hex.uppercased(), bits: 5, padded: true, caseInsensitive: true)),
            .base32: .bits(BitPackedAlphabet(b32, bits: 5, caseInsensitive: true)),
            .base32upper: .bits(BitPackedAlphabet(b32.uppercased(), bits: 5, caseInsensitive: true)),
            .base32pad: .bits(BitPackedAlphabet(b32, bits: 5, padded: true, caseInsensitive: true)),
            .base32padupper: .bits(BitPackedAlphabet(b32.uppercased(), bits: 5, padded: true, caseInsensitive: true)),
            .base32z: .bits(BitPackedAlphabet("ybndrfg8ejkmcpqxot1uwisza345h769", bits: 5)),
            .base36: .bigNumber(BigNumberAlphabet("0123456789abcdefghijklmnopqrstuvwxyz", caseInsensitive: true)),
            .base36upper: .bigNumber(BigNumberAlphabet("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", caseInsensitive: true)),
            .base45: .base45,
            .base58btc: .bigNumber(BigNumberAlphabet("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")),
            .base58flickr: .bigNumber(BigNumberAlphabet("123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ")),
            .base64: .bits(BitPackedAlphabet(b64 + "+/", bits: 6)),
            .base64pad: .bits(BitPackedAlphabet(b64 + "+/", bits: 6, padded: true)),
            .base64url: .bits(BitPackedAlphabet(b64 + "-_", bits: 6)),
            .base64urlpad: .bits(BitPackedAlphabet(b64 + "-_", bits: 6, padded: true)),
            .proquint: .proquint,
            .base256emoji: .emoji,
        ]
    }()

    private static let byPrefix: [Character: Multibase] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.prefix, $0) })
}

/// What was wrong with multibase text.
public enum MultibaseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No text at all.
    case empty
    /// The first character is not a known multibase prefix.
    case unknownPrefix(Character)
    /// A character outside the base's alphabet.
    case invalidCharacter(Character)
    /// A length no encoding in this base can have.
    case invalidLength(Int)
    /// The last character carries bits beyond the data that are not zero (a non-canonical form).
    case nonZeroPaddingBits

    public var description: String {
        switch self {
        case .empty: "empty multibase string"
        case .unknownPrefix(let c): "unknown multibase prefix '\(c)'"
        case .invalidCharacter(let c): "invalid character '\(c)' for the base"
        case .invalidLength(let n): "invalid length \(n) for the base"
        case .nonZeroPaddingBits: "non-zero bits after the data in the last character"
        }
    }
}
