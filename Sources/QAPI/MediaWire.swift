import Foundation
import QpiC

/// A media asset on the wire (`/q/v1/media`).
public struct MediaAssetWire: Codable, Sendable, Equatable {
    public struct Variant: Codable, Sendable, Equatable {
        public var name: String
        public var width: Int
        public var height: Int
        public var format: String
        public var mediaType: String
        /// The variant's DriveFile block; `content` its UnixFS file (served by CID like any file).
        public var file: String
        public var content: String
    }
    public struct Location: Codable, Sendable, Equatable {
        public var lat: Double
        public var lon: Double
    }
    public var id: String
    public var owner: String
    public var profile: String
    /// The encrypted original's DriveFile (absent when the profile keeps none).
    public var file: String?
    public var format: String
    public var mediaType: String
    public var width: Int
    public var height: Int
    public var duration: Double?
    public var orientation: Int
    public var colorSpace: String?
    public var exif: [String: String]
    public var gps: Location?
    public var codecs: [String]
    public var variants: [Variant]
    public var createdAt: UInt64

    public init(_ a: MediaAsset) {
        (id, owner, profile, file) = (a.id, a.owner, a.profile, a.file?.string)
        (format, mediaType, width, height, duration) = (a.info.format.rawValue, a.info.format.mediaType, a.info.width, a.info.height, a.info.duration)
        (orientation, colorSpace, exif, codecs, createdAt) = (a.info.orientation, a.info.colorSpace, a.info.exif, a.info.codecs, a.createdAt)
        gps = a.info.gps.map { Location(lat: $0.lat, lon: $0.lon) }
        variants = a.variants.map {
            Variant(name: $0.name, width: $0.width, height: $0.height, format: $0.format.rawValue, mediaType: $0.format.mediaType, file: $0.file.string, content: $0.content.string)
        }
    }
}
