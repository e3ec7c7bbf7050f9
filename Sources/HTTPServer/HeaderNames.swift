import HTTPTypes

/// Header names the daemon writes or reads that HTTPTypes does not name, made once: building a
/// name checks its characters, which is work to do once, not on every response. (`.te` and
/// `.xContentTypeOptions` are HTTPTypes' own.)
extension HTTPField.Name {
    static let xIpfsPath = HTTPField.Name("X-Ipfs-Path")!
    static let xIpfsRoots = HTTPField.Name("X-Ipfs-Roots")!
    static let xStreamOutput = HTTPField.Name("X-Stream-Output")!
    static let xChunkedOutput = HTTPField.Name("X-Chunked-Output")!
    static let xStreamError = HTTPField.Name("X-Stream-Error")!
    static let xAccelBuffering = HTTPField.Name("X-Accel-Buffering")!
    static let xModuleChecksum = HTTPField.Name("X-Module-Checksum")!
    static let lastEventID = HTTPField.Name("Last-Event-ID")!
}
