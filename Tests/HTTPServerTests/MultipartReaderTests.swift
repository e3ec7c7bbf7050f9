import CAR
import HTTPMessages
import Testing

/// The multipart reader every upload goes through, and the header trimming it shares with the
/// gateway's header grammar: parts and bodies come out whole whatever sizes the source hands
/// the bytes over in, and bad bodies are refused rather than cut short.
@Suite struct MultipartReaderTests {
    /// A source that hands over at most `step` bytes per read, so delimiters and headers arrive
    /// split across reads.
    struct Trickle: ByteSource {
        let bytes: [UInt8]
        let step: Int
        var position = 0
        mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            let n = min(step, buffer.count, bytes.count - position)
            guard n > 0 else { return 0 }
            bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
            position += n
            return n
        }
    }

    static let boundary = "qb0undary"
    /// Bodies that hold what looks like the start of a delimiter, and an empty one.
    static let parts: [(headers: String, body: [UInt8])] = [
        ("Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type:\t application/octet-stream \t", Array("first\r\n--qb0undar\r\n-- not the end".utf8)),
        ("content-disposition:form-data; name=\"file\"", []),
        ("Content-Disposition: form-data; name=\"file\"", (0..<5000).map { UInt8($0 % 251) }),
    ]

    static func body(closed: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            out += Array("--\(boundary)\r\n\(part.headers)\r\n\r\n".utf8) + part.body + Array("\r\n".utf8)
        }
        if closed { out += Array("--\(boundary)--\r\n".utf8) }
        return out
    }

    @Test(arguments: [1, 2, 3, 7, 13, 64, 100_000])
    func partsAndBodiesComeOutWholeWhateverTheReadSizes(step: Int) throws {
        let reader = MultipartReader(Trickle(bytes: Self.body(), step: step), boundary: Self.boundary)
        var seen = 0
        while let headers = try reader.nextPart() {
            #expect(headers["content-disposition"]?.hasPrefix("form-data;") == true, "names are lowercased, values trimmed")
            if seen == 0 { #expect(headers["content-type"] == "application/octet-stream") }
            #expect(try reader.readBody(limit: 1 << 20) == Self.parts[seen].body)
            seen += 1
        }
        #expect(seen == Self.parts.count)
    }

    @Test(arguments: [1, 5, 100_000])
    func unreadBodiesAreSkipped(step: Int) throws {
        let reader = MultipartReader(Trickle(bytes: Self.body(), step: step), boundary: Self.boundary)
        _ = try reader.nextPart()
        var two = [UInt8](repeating: 0, count: 2)
        #expect(try two.withUnsafeMutableBytes { try reader.read(into: $0) } == 2)
        #expect(two == Array(Self.parts[0].body.prefix(2)))
        _ = try reader.nextPart()
        _ = try reader.nextPart()
        #expect(try reader.readBody(limit: 1 << 20) == Self.parts[2].body)
        #expect(try reader.nextPart() == nil)
    }

    @Test func aBodyOverTheLimitIsRefusedAndOneAtItIsNot() throws {
        let size = Self.parts[2].body.count
        let atLimit = MultipartReader(BytesSource(Self.body()), boundary: Self.boundary)
        for _ in 0..<3 { _ = try atLimit.nextPart() }
        #expect(try atLimit.readBody(limit: size).count == size)
        let over = MultipartReader(BytesSource(Self.body()), boundary: Self.boundary)
        for _ in 0..<3 { _ = try over.nextPart() }
        #expect(throws: BodyTooLarge.self) { try over.readBody(limit: size - 1) }
    }

    @Test(arguments: [1, 100_000])
    func aTruncatedUploadIsRefused(step: Int) throws {
        var bytes = Self.body(closed: false)
        bytes.removeLast(40)
        let reader = MultipartReader(Trickle(bytes: bytes, step: step), boundary: Self.boundary)
        #expect(throws: MultipartMalformed.self) {
            while try reader.nextPart() != nil { _ = try reader.readBody(limit: 1 << 20) }
        }
    }

    @Test func theBoundaryParameterIsFoundWithSpacesAndQuotes() {
        #expect(MultipartReader<BytesSource>.boundary(of: "multipart/form-data; boundary=abc") == "abc")
        #expect(MultipartReader<BytesSource>.boundary(of: "Multipart/Form-Data;charset=utf-8; BOUNDARY =\t\"a b\" ") == "a b")
        #expect(MultipartReader<BytesSource>.boundary(of: "multipart/form-data; boundary=\"\"") == nil)
        #expect(MultipartReader<BytesSource>.boundary(of: "text/plain; boundary=abc") == nil)
    }

    @Test func optionalWhitespaceIsSpacesAndTabsOnly() {
        #expect(" \t a b\t ".trimmingOWS == "a b")
        #expect("\t \t".trimmingOWS == "")
        #expect("".trimmingOWS == "")
        #expect("x".trimmingOWS == "x")
        // Not HTTP whitespace: kept.
        #expect("\u{00A0}x\r".trimmingOWS == "\u{00A0}x\r")
        let text = "k: \tvalue "
        #expect(text[text.index(text.startIndex, offsetBy: 2)...].trimmingOWS == "value")
    }

    @Test func headerGrammarTrimsTheSameWay() throws {
        #expect(MediaRange.list(" application/vnd.ipld.raw ; q = \"0.5\" , text/html").map(\.type) == ["application/vnd.ipld.raw", "text/html"])
        #expect(MediaRange.list("a/b; q=\"0.5\"").first?.weight == 0.5)
        #expect(EntityTags.matches(" W/\"x\" ,\t\"y\"", etag: "\"y\""))
        #expect(try ByteRanges.parse(" bytes = 0-1 ,\t 4-", size: 10, maximum: 10) == [0...1, 4...9])
    }
}
