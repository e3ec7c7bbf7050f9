import Foundation
import Storage

/// The `http` section of `config.json`: the daemon's HTTP limits and timeouts (durations as
/// `30s`, `2m`; Docs/http.md). `ServerLimits` checks and applies it.
public struct HTTPConfiguration: ConfigurationSection {
    public static let key = "http"
    /// A request's headers must be complete within this, counted from the connection's
    /// start or the end of the previous response (an idle keep-alive connection closes then).
    public var headerTimeout = "30s"
    /// A request body that sends nothing for this long has its connection closed.
    public var bodyIdleTimeout = "30s"
    /// A response the client reads nothing of for this long has its connection closed.
    public var sendTimeout = "60s"
    /// The same for a response of more than 64 KiB to an authenticated caller of the API
    /// listener (`qstore cat X | less` through a daemon pauses as long as its reader does);
    /// `sendTimeout` again once the daemon is stopping.
    public var apiSendTimeout = "1h"
    /// A whole small body (block/put, dag/put, PUT /ipfs, /pins) must arrive within this (408).
    public var requestTimeout = "60s"
    /// Uploads (add, dag/import) imported at once.
    public var uploadSlots = 32
    /// Uploads one client address may have in progress or waiting (more: 429).
    public var uploadsPerClient = 16
    /// Streamed downloads (files, CARs, TARs, cat, get) produced at once, on each listener.
    public var downloadSlots = 32
    /// Streamed downloads one client address may have in progress or waiting (more: 429).
    public var downloadsPerClient = 16
    /// How long an upload or a download waits for a free slot before 503.
    public var slotWait = "10s"
    /// Ranges served from one `Range` header (more: the whole body, 200).
    public var maximumRanges = 100
    /// Connections open at once on each listener; more are answered 503 and closed.
    public var maximumConnections = 1024
    /// Header fields in one request (more: 431).
    public var maximumHeaderCount = 100
    /// Bytes of one request's header fields, names and values (more: 431).
    public var maximumHeaderBytes = 64 << 10

    public init() {}

    /// Decodes the section; missing keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        headerTimeout = try c.decodeIfPresent(String.self, forKey: .headerTimeout) ?? headerTimeout
        bodyIdleTimeout = try c.decodeIfPresent(String.self, forKey: .bodyIdleTimeout) ?? bodyIdleTimeout
        sendTimeout = try c.decodeIfPresent(String.self, forKey: .sendTimeout) ?? sendTimeout
        apiSendTimeout = try c.decodeIfPresent(String.self, forKey: .apiSendTimeout) ?? apiSendTimeout
        requestTimeout = try c.decodeIfPresent(String.self, forKey: .requestTimeout) ?? requestTimeout
        uploadSlots = try c.decodeIfPresent(Int.self, forKey: .uploadSlots) ?? uploadSlots
        uploadsPerClient = try c.decodeIfPresent(Int.self, forKey: .uploadsPerClient) ?? uploadsPerClient
        downloadSlots = try c.decodeIfPresent(Int.self, forKey: .downloadSlots) ?? downloadSlots
        downloadsPerClient = try c.decodeIfPresent(Int.self, forKey: .downloadsPerClient) ?? downloadsPerClient
        slotWait = try c.decodeIfPresent(String.self, forKey: .slotWait) ?? slotWait
        maximumRanges = try c.decodeIfPresent(Int.self, forKey: .maximumRanges) ?? maximumRanges
        maximumConnections = try c.decodeIfPresent(Int.self, forKey: .maximumConnections) ?? maximumConnections
        maximumHeaderCount = try c.decodeIfPresent(Int.self, forKey: .maximumHeaderCount) ?? maximumHeaderCount
        maximumHeaderBytes = try c.decodeIfPresent(Int.self, forKey: .maximumHeaderBytes) ?? maximumHeaderBytes
    }

    /// `QSTORE_MAX_CONNECTIONS`.
    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_MAX_CONNECTIONS"] {
            guard let n = Int(v) else { throw RepositoryError.invalidConfiguration("QSTORE_MAX_CONNECTIONS=\(v) is not a number") }
            maximumConnections = n
        }
    }
}

/// The `addresses` section of `config.json`: where the daemon listens.
public struct AddressesConfiguration: ConfigurationSection {
    public static let key = "addresses"
    /// The admin API (loopback by default).
    public var api = "127.0.0.1:5001"
    /// The read-only gateway.
    public var gateway = "127.0.0.1:8080"

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        api = try c.decodeIfPresent(String.self, forKey: .api) ?? api
        gateway = try c.decodeIfPresent(String.self, forKey: .gateway) ?? gateway
    }

    /// `QSTORE_API_ADDRESS`, `QSTORE_GATEWAY_ADDRESS`.
    public mutating func applyEnvironment(_ env: [String: String]) throws {
        if let v = env["QSTORE_API_ADDRESS"] { api = v }
        if let v = env["QSTORE_GATEWAY_ADDRESS"] { gateway = v }
    }
}
