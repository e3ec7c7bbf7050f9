extension Array where Element == UInt8 {
    /// `withUnsafeBytes` for a body with a typed error: the standard library's
    /// version only rethrows `any Error`, which would erase the error enums
    /// this project's decoders throw.
    @inlinable
    public func withUnsafeBytesTyped<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        do {
            return try withUnsafeBytes { try body($0) }
        } catch {
            throw error as! E  // only `body` throws, and it throws E
        }
    }
}
