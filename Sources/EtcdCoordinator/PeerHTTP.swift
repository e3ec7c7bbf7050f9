import AsyncHTTPClient
import CAR
import Foundation
import NIOCore
import Replication

/// Block transfer between nodes: GETs of peers' trustless gateways (or any IPFS gateway) with
/// AsyncHTTPClient, the body handed to the blocking CAR reader through a bounded pipe (at most
/// `window` bytes in flight: memory stays flat whatever the DAG's size).
public struct PeerHTTP: PeerTransport {
    let client: HTTPClient
    /// How long to wait for the status line.
    let timeout: TimeAmount
    /// A body that stalls this long is cut (the transfer resumes with what is missing).
    let idle: TimeAmount

    public init(client: HTTPClient = .shared, timeout: TimeAmount = .seconds(10), idle: TimeAmount = .seconds(30)) {
        (self.client, self.timeout, self.idle) = (client, timeout, idle)
    }

    public func open(_ url: String) async throws -> any PeerStream {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/vnd.ipld.car")
        let response: HTTPClientResponse
        do { response = try await client.execute(request, timeout: timeout) } catch {
            throw ClusterError.unavailable("\(url): \(error)")
        }
        guard response.status == .ok else {
            throw ClusterError.notFound("\(url): \(response.status.code) \(response.status.reasonPhrase)")
        }
        let pipe = BodyStream(window: 4 << 20, idle: Double(idle.nanoseconds) / 1e9, url: url)
        pipe.task = Task {
            do {
                for try await chunk in response.body {
                    guard await pipe.push(Array(chunk.readableBytesView)) else { return }
                }
                pipe.finish(nil)
            } catch {
                pipe.finish(error)
            }
        }
        return pipe
    }
}

/// Bytes arriving on a task, read on a blocking thread.
final class BodyStream: PeerStream, @unchecked Sendable {
    // Safe: every field but `task` is touched under `condition`; `task` is set once before use.
    private let condition = NSCondition()
    private var chunks: [[UInt8]] = []
    private var offset = 0
    private var buffered = 0
    private var finished = false
    private var closed = false
    private var failure: (any Error)?
    private let window: Int
    private let idle: TimeInterval
    private let url: String
    var task: Task<Void, Never>?

    init(window: Int, idle: TimeInterval, url: String) { (self.window, self.idle, self.url) = (window, idle, url) }

    /// Waits (off the cooperative threads) for room; false once the reader closed.
    func push(_ bytes: [UInt8]) async -> Bool {
        while true {
            let state: Bool? = condition.withLock {
                if closed { return false }
                if buffered < window {
                    chunks.append(bytes)
                    buffered += bytes.count
                    condition.broadcast()
                    return true
                }
                return nil
            }
            if let state { return state }
            try? await Task.sleep(nanoseconds: 1_000_000)
        }
    }

    func finish(_ error: (any Error)?) {
        condition.withLock {
            finished = true
            failure = error
            condition.broadcast()
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty && !finished && !closed {
            // A body that stalls is cut: the transfer goes on with what is missing.
            if !condition.wait(until: Date().addingTimeInterval(idle)) && chunks.isEmpty && !finished {
                closed = true
                task?.cancel()
                throw ClusterError.unavailable("\(url): no bytes for \(Int(idle)) s")
            }
        }
        if chunks.isEmpty {
            if let failure { throw failure is ClusterError ? failure : ClusterError.unavailable("the peer's body broke off: \(failure)") }
            return 0
        }
        let first = chunks[0]
        let n = min(buffer.count, first.count - offset)
        first.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
        offset += n
        buffered -= n
        if offset == first.count {
            chunks.removeFirst()
            offset = 0
        }
        return n
    }

    func close() {
        condition.withLock {
            closed = true
            chunks = []
            condition.broadcast()
        }
        task?.cancel()
    }
}
