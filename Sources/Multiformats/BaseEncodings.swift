/// The base encodings behind multibase, each without its prefix character.
/// Three mechanisms cover them all: bit packing (RFC 4648 style: base2, base8,
/// base16, base32*, base64*), big-number conversion with leading zeros kept
/// (base10, base36, base58*), and the two odd ones (base45, proquint,
/// base256emoji).

/// RFC 4648 style: the input is a bit string cut into fixed-width groups, most
/// significant bit first; the last group is zero-filled on the right.
struct BitPackedAlphabet: Sendable {
    let characters: [UInt8]
    let bitsPerCharacter: Int
    let padded: Bool
    let caseInsensitive: Bool
    private let values: [Int8]

    init(_ alphabet: String, bits: Int, padded: Bool = false, caseInsensitive: Bool = false) {
        characters = Array(alphabet.utf8)
        precondition(characters.count == 1 << bits)
        bitsPerCharacter = bits
        self.padded = padded
        self.caseInsensitive = caseInsensitive
        var v = [Int8](repeating: -1, count: 256)
        for (i, c) in characters.enumerated() {
            v[Int(c)] = Int8(i)
            if caseInsensitive {
                v[Int(Character(Unicode.Scalar(c)).lowercased().utf8.first!)] = Int8(i)
                v[Int(Character(Unicode.Scalar(c)).uppercased().utf8.first!)] = Int8(i)
            }
        }
        values = v
    }

    /// Characters per padded quantum: lcm(8, bits) / bits.
    private var quantum: Int {
        var a = 8, b = bitsPerCharacter
        while b != 0 { (a, b) = (b, a % b) }
        return 8 * bitsPerCharacter / a / bitsPerCharacter
    }

    func encode(_ bytes: some Collection<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 8 + bitsPerCharacter - 1) / bitsPerCharacter + 8)
        var acc: UInt32 = 0
        var bits = 0
        let mask = UInt32(1 << bitsPerCharacter - 1)
        for b in bytes {
            acc = (acc << 8) | UInt32(b)
            bits += 8
            while bits >= bitsPerCharacter {
                bits -= bitsPerCharacter
                out.append(characters[Int((acc >> UInt32(bits)) & mask)])
            }
            acc &= (1 << UInt32(bits)) - 1
        }
        if bits > 0 {
            out.append(characters[Int((acc << UInt32(bitsPerCharacter - bits)) & mask)])
        }
        if padded {
            while out.count % quantum != 0 { out.append(UInt8(ascii: "=")) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    func decode(_ text: Substring) throws(MultibaseError) -> [UInt8] {
        var utf8 = Array(text.utf8)
        if padded {
            while utf8.last == UInt8(ascii: "=") { utf8.removeLast() }
        }
        // A final group that cannot hold a whole byte means the text was cut short.
        let trailingBits = (utf8.count * bitsPerCharacter) % 8
        if trailingBits >= bitsPerCharacter { throw .invalidLength(utf8.count) }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count * bitsPerCharacter / 8)
        var acc: UInt32 = 0
        var bits = 0
        for c in utf8 {
            let v = values[Int(c)]
            guard v >= 0 else { throw .invalidCharacter(Character(Unicode.Scalar(c))) }
            acc = (acc << UInt32(bitsPerCharacter)) | UInt32(v)
            bits += bitsPerCharacter
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        // The unused low bits of the last character must be zero, so each byte string has one text form.
        guard acc == 0 else { throw .nonZeroPaddingBits }
        return out
    }
}

/// Big-number bases: the input is one big-endian number written in the base,
/// and each leading zero byte is written as one leading zero digit.
struct BigNumberAlphabet: Sendable {
    let characters: [UInt8]
    private let values: [Int8]

    init(_ alphabet: String, caseInsensitive: Bool = false) {
        characters = Array(alphabet.utf8)
        var v = [Int8](repeating: -1, count: 256)
        for (i, c) in characters.enumerated() {
            v[Int(c)] = Int8(i)
            if caseInsensitive {
                v[Int(Character(Unicode.Scalar(c)).lowercased().utf8.first!)] = Int8(i)
                v[Int(Character(Unicode.Scalar(c)).uppercased().utf8.first!)] = Int8(i)
            }
        }
        values = v
    }

    var base: Int { characters.count }

    func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        let zeros = input.prefix { $0 == 0 }.count
        // Digits little-endian; each input byte multiplies the number by 256.
        var digits: [UInt8] = []
        digits.reserveCapacity(input.count * 138 / 100 + 1)
        for b in input[zeros...] {
            var carry = Int(b)
            for i in digits.indices {
                carry += Int(digits[i]) << 8
                digits[i] = UInt8(carry % base)
                carry /= base
            }
            while carry > 0 {
                digits.append(UInt8(carry % base))
                carry /= base
            }
        }
        var out = [UInt8](repeating: characters[0], count: zeros)
        out.reserveCapacity(zeros + digits.count)
        for d in digits.reversed() { out.append(characters[Int(d)]) }
        return String(decoding: out, as: UTF8.self)
    }

    func decode(_ text: Substring) throws(MultibaseError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        var zeros = 0
        while zeros < utf8.count, utf8[zeros] == characters[0] { zeros += 1 }
        var bytes: [UInt8] = []  // little-endian
        bytes.reserveCapacity(utf8.count)
        for c in utf8[zeros...] {
            let v = values[Int(c)]
            guard v >= 0 else { throw .invalidCharacter(Character(Unicode.Scalar(c))) }
            var carry = Int(v)
            for i in bytes.indices {
                carry += Int(bytes[i]) * base
                bytes[i] = UInt8(truncatingIfNeeded: carry)
                carry >>= 8
            }
            while carry > 0 {
                bytes.append(UInt8(truncatingIfNeeded: carry))
                carry >>= 8
            }
        }
        return [UInt8](repeating: 0, count: zeros) + bytes.reversed()
    }
}

/// Lowercase and uppercase hex, the commonest bit-packed base, with a direct API.
public enum Base16 {
    static let lower = BitPackedAlphabet("0123456789abcdef", bits: 4, caseInsensitive: true)
    static let upper = BitPackedAlphabet("0123456789ABCDEF", bits: 4, caseInsensitive: true)

    /// Hex of `bytes`.
    public static func encode(_ bytes: some Collection<UInt8>, uppercase: Bool = false) -> String {
        (uppercase ? upper : lower).encode(bytes)
    }

    /// Bytes of hex text (either case).
    public static func decode(_ text: some StringProtocol) throws(MultibaseError) -> [UInt8] {
        try lower.decode(Substring(text))
    }
}

/// Base45 (RFC 9285): two bytes become three characters, a lone last byte two.
enum Base45 {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:".utf8)
    static let values: [Int8] = {
        var v = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() {
            v[Int(c)] = Int8(i)
            v[Int(Character(Unicode.Scalar(c)).lowercased().utf8.first!)] = Int8(i)
        }
        return v
    }()

    static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var out: [UInt8] = []
        var i = 0
        while i + 1 < input.count {
            var n = Int(input[i]) << 8 | Int(input[i + 1])
            for _ in 0..<3 { out.append(alphabet[n % 45]); n /= 45 }
            i += 2
        }
        if i < input.count {
            var n = Int(input[i])
            for _ in 0..<2 { out.append(alphabet[n % 45]); n /= 45 }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: Substring) throws(MultibaseError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        guard utf8.count % 3 != 1 else { throw .invalidLength(utf8.count) }
        var out: [UInt8] = []
        var i = 0
        while i < utf8.count {
            let group = utf8[i..<min(i + 3, utf8.count)]
            var n = 0
            var scale = 1
            for c in group {
                let v = values[Int(c)]
                guard v >= 0 else { throw .invalidCharacter(Character(Unicode.Scalar(c))) }
                n += Int(v) * scale
                scale *= 45
            }
            if group.count == 3 {
                guard n <= 0xffff else { throw .invalidLength(utf8.count) }
                out.append(UInt8(n >> 8)); out.append(UInt8(n & 0xff))
            } else {
                guard n <= 0xff else { throw .invalidLength(utf8.count) }
                out.append(UInt8(n))
            }
            i += 3
        }
        return out
    }
}

/// Proquint (multibase prefix `p`, then `ro-`): each 16-bit word becomes
/// consonant-vowel-consonant-vowel-consonant, words joined by `-`. A lone last
/// byte becomes consonant-vowel-consonant (4 + 2 + 2 bits, the last consonant's
/// low bits zero), so every byte string round-trips.
enum Proquint {
    static let consonants = Array("bdfghjklmnprstvz".utf8)
    static let vowels = Array("aiou".utf8)

    static func encode(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var words: [String] = []
        var i = 0
        while i < input.count {
            var w: [UInt8] = []
            if i + 1 < input.count {
                let n = Int(input[i]) << 8 | Int(input[i + 1])
                w = [consonants[n >> 12], vowels[(n >> 10) & 3], consonants[(n >> 6) & 15],
                     vowels[(n >> 4) & 3], consonants[n & 15]]
            } else {
                let n = Int(input[i])
                w = [consonants[n >> 4], vowels[(n >> 2) & 3], consonants[(n & 3) << 2]]
            }
            words.append(String(decoding: w, as: UTF8.self))
            i += 2
        }
        return "ro-" + words.joined(separator: "-")
    }

    static func decode(_ text: Substring) throws(MultibaseError) -> [UInt8] {
        guard text.hasPrefix("ro-") else { throw .invalidLength(text.utf8.count) }
        let body = text.dropFirst(3)
        if body.isEmpty { return [] }
        var out: [UInt8] = []
        let words = body.split(separator: "-", omittingEmptySubsequences: false)
        for (index, word) in words.enumerated() {
            let w = Array(word.utf8)
            func c(_ x: UInt8) throws(MultibaseError) -> Int {
                guard let i = consonants.firstIndex(of: x) else { throw .invalidCharacter(Character(Unicode.Scalar(x))) }
                return i
            }
            func v(_ x: UInt8) throws(MultibaseError) -> Int {
                guard let i = vowels.firstIndex(of: x) else { throw .invalidCharacter(Character(Unicode.Scalar(x))) }
                return i
            }
            if w.count == 5 {
                let n = try c(w[0]) << 12 | v(w[1]) << 10 | c(w[2]) << 6 | v(w[3]) << 4 | c(w[4])
                out.append(UInt8(n >> 8)); out.append(UInt8(n & 0xff))
            } else if w.count == 3 && index == words.count - 1 {
                let last = try c(w[2])
                guard last & 3 == 0 else { throw .invalidCharacter(Character(Unicode.Scalar(w[2]))) }
                out.append(UInt8(try c(w[0]) << 4 | v(w[1]) << 2 | last >> 2))
            } else {
                throw .invalidLength(text.utf8.count)
            }
        }
        return out
    }
}

/// Base256Emoji: one emoji per byte, from the table in the multibase RFC.
enum Base256Emoji {
    static let codePoints: [UInt32] = [
        0x1F680, 0x1FA90, 0x2604, 0x1F6F0, 0x1F30C, 0x1F311, 0x1F312, 0x1F313,
        0x1F314, 0x1F315, 0x1F316, 0x1F317, 0x1F318, 0x1F30D, 0x1F30F, 0x1F30E,
        0x1F409, 0x2600, 0x1F4BB, 0x1F5A5, 0x1F4BE, 0x1F4BF, 0x1F602, 0x2764,
        0x1F60D, 0x1F923, 0x1F60A, 0x1F64F, 0x1F495, 0x1F62D, 0x1F618, 0x1F44D,
        0x1F605, 0x1F44F, 0x1F601, 0x1F525, 0x1F970, 0x1F494, 0x1F496, 0x1F499,
        0x1F622, 0x1F914, 0x1F606, 0x1F644, 0x1F4AA, 0x1F609, 0x263A, 0x1F44C,
        0x1F917, 0x1F49C, 0x1F614, 0x1F60E, 0x1F607, 0x1F339, 0x1F926, 0x1F389,
        0x1F49E, 0x270C, 0x2728, 0x1F937, 0x1F631, 0x1F60C, 0x1F338, 0x1F64C,
        0x1F60B, 0x1F497, 0x1F49A, 0x1F60F, 0x1F49B, 0x1F642, 0x1F493, 0x1F929,
        0x1F604, 0x1F600, 0x1F5A4, 0x1F603, 0x1F4AF, 0x1F648, 0x1F447, 0x1F3B6,
        0x1F612, 0x1F92D, 0x2763, 0x1F61C, 0x1F48B, 0x1F440, 0x1F62A, 0x1F611,
        0x1F4A5, 0x1F64B, 0x1F61E, 0x1F629, 0x1F621, 0x1F92A, 0x1F44A, 0x1F973,
        0x1F625, 0x1F924, 0x1F449, 0x1F483, 0x1F633, 0x270B, 0x1F61A, 0x1F61D,
        0x1F634, 0x1F31F, 0x1F62C, 0x1F643, 0x1F340, 0x1F337, 0x1F63B, 0x1F613,
        0x2B50, 0x2705, 0x1F97A, 0x1F308, 0x1F608, 0x1F918, 0x1F4A6, 0x2714,
        0x1F623, 0x1F3C3, 0x1F490, 0x2639, 0x1F38A, 0x1F498, 0x1F620, 0x261D,
        0x1F615, 0x1F33A, 0x1F382, 0x1F33B, 0x1F610, 0x1F595, 0x1F49D, 0x1F64A,
        0x1F639, 0x1F5E3, 0x1F4AB, 0x1F480, 0x1F451, 0x1F3B5, 0x1F91E, 0x1F61B,
        0x1F534, 0x1F624, 0x1F33C, 0x1F62B, 0x26BD, 0x1F919, 0x2615, 0x1F3C6,
        0x1F92B, 0x1F448, 0x1F62E, 0x1F646, 0x1F37B, 0x1F343, 0x1F436, 0x1F481,
        0x1F632, 0x1F33F, 0x1F9E1, 0x1F381, 0x26A1, 0x1F31E, 0x1F388, 0x274C,
        0x270A, 0x1F44B, 0x1F630, 0x1F928, 0x1F636, 0x1F91D, 0x1F6B6, 0x1F4B0,
        0x1F353, 0x1F4A2, 0x1F91F, 0x1F641, 0x1F6A8, 0x1F4A8, 0x1F92C, 0x2708,
        0x1F380, 0x1F37A, 0x1F913, 0x1F619, 0x1F49F, 0x1F331, 0x1F616, 0x1F476,
        0x1F974, 0x25B6, 0x27A1, 0x2753, 0x1F48E, 0x1F4B8, 0x2B07, 0x1F628,
        0x1F31A, 0x1F98B, 0x1F637, 0x1F57A, 0x26A0, 0x1F645, 0x1F61F, 0x1F635,
        0x1F44E, 0x1F932, 0x1F920, 0x1F927, 0x1F4CC, 0x1F535, 0x1F485, 0x1F9D0,
        0x1F43E, 0x1F352, 0x1F617, 0x1F911, 0x1F30A, 0x1F92F, 0x1F437, 0x260E,
        0x1F4A7, 0x1F62F, 0x1F486, 0x1F446, 0x1F3A4, 0x1F647, 0x1F351, 0x2744,
        0x1F334, 0x1F4A3, 0x1F438, 0x1F48C, 0x1F4CD, 0x1F940, 0x1F922, 0x1F445,
        0x1F4A1, 0x1F4A9, 0x1F450, 0x1F4F8, 0x1F47B, 0x1F910, 0x1F92E, 0x1F3BC,
        0x1F975, 0x1F6A9, 0x1F34E, 0x1F34A, 0x1F47C, 0x1F48D, 0x1F4E3, 0x1F942,    ]
    static let byteOf: [UInt32: UInt8] = Dictionary(uniqueKeysWithValues: codePoints.enumerated().map { ($1, UInt8($0)) })

    static func encode(_ bytes: some Collection<UInt8>) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(codePoints[Int(b)])!) }
        return String(s)
    }

    static func decode(_ text: Substring) throws(MultibaseError) -> [UInt8] {
        var out: [UInt8] = []
        for scalar in text.unicodeScalars {
            guard let b = byteOf[scalar.value] else { throw .invalidCharacter(Character(scalar)) }
            out.append(b)
        }
        return out
    }
}
