import Backup
import Foundation
import HTTPTypes
import Hummingbird
import Locking
import Logging
import ServiceLifecycle
import Node
import Pinning
import QAPI
import Qindex
import Synchronization

/// Backups on the Q API (`/q/v1/backups`, Docs/backup.md), scope `admin` (they read and write
/// directories on the daemon's machine). Creating and restoring are jobs: `POST` answers `202`
/// with the job, `GET /q/v1/backups/jobs/{id}` follows it to `succeeded` or `failed`.
struct BackupAPI {
    let node: Node
    let io: StorageThreads
    let jobs: BackupJobs
    let limits: ServerLimits
    let downloads: Downloads
    /// The thread a streamed restore reads its upload on (a slow client holds no storage thread).
    let uploads: ClientSlots

    init(node: Node, io: StorageThreads, jobs: BackupJobs, limits: ServerLimits, downloads: Downloads) {
        (self.node, self.io, self.jobs, self.limits, self.downloads) = (node, io, jobs, limits, downloads)
        uploads = ClientSlots(limits.uploads)
    }

    static let prefix = "/q/v1/backups"

    func register(on router: Router<ServerContext>) {
        router.get(RouterPath(Self.prefix)) { request, _ in await qAsync { try await self.list(request) } }
        router.post(RouterPath(Self.prefix)) { request, _ in await qAsync { try await self.start(request, kind: "create") } }
        router.post(RouterPath(Self.prefix + "/stream")) { request, _ in await qAsync { try await self.stream(request) } }
        router.post(RouterPath(Self.prefix + "/restore")) { request, context in
            await qAsync {
                request.headers[.contentType]?.hasPrefix(BackupAPI.carType) == true
                    ? try await self.restoreStream(request, context) : try await self.start(request, kind: "restore")
            }
        }
        router.get(RouterPath(Self.prefix + "/jobs")) { _, _ in await qAsync { QindexAPI.ok(self.jobs.all()) } }
        router.get(RouterPath(Self.prefix + "/jobs/{id}")) { _, context in
            await qAsync {
                let id = context.parameters.get("id") ?? ""
                guard let job = self.jobs.get(id) else { throw BackupError.notFound("no backup job \(id.prefix(80))") }
                return QindexAPI.ok(job)
            }
        }
    }

    /// `GET /q/v1/backups?directory=DIR`: the sets in a directory, oldest first.
    func list(_ request: Request) async throws -> Response {
        guard let dir = request.uri.queryParameters.get("directory").map({ String($0) }), !dir.isEmpty else {
            throw BackupError.invalid("directory: required (a directory on the daemon's machine)")
        }
        let sets = try await io.run { try BackupDirectory(dir).sets() }
        return QindexAPI.ok(BackupList(directory: dir, sets: sets.map(BackupSetInfo.init)))
    }

    func start(_ request: Request, kind: String) async throws -> Response {
        let body = try await RequestBodies.collect(request, limit: 16 << 10, timeout: limits.requestTimeout)
        let r: BackupRequest
        do { r = try JSONDecoder().decode(BackupRequest.self, from: Data(buffer: body)) } catch {
            throw BackupError.invalid("the body is a JSON object {directory, incremental?, partSize?, pins?, id?}")
        }
        guard r.directory.hasPrefix("/"), !r.directory.utf8.contains(0), r.directory.utf8.count <= 4096 else {
            throw BackupError.invalid("directory: an absolute path on the daemon's machine")
        }
        if let p = r.partSize, p < 1 << 20 { throw BackupError.invalid("partSize: at least 1 MiB (1048576)") }
        if let id = r.id, !BackupManifest.isID(id) { throw BackupError.invalid("id: not a backup id") }
        let selection = try r.pins.map(PinSelector.init)
        // What can be known before the job starts is answered now, with its code.
        try await io.run {
            let d = BackupDirectory(r.directory)
            if kind == "restore" {
                guard let id = try r.id ?? d.latest()?.id else { throw BackupError.notFound("no complete backup in \(r.directory)") }
                _ = try d.chain(id)
            } else if r.incremental == true {
                guard try d.latest() != nil else { throw BackupError.notFound("incremental: no complete backup in \(r.directory) to build on") }
            }
        }
        // One job at a time: each holds a storage thread and the disk for its whole run.
        guard let job = jobs.begin(kind: kind, directory: r.directory, at: Timestamps.format(UInt64(Date().timeIntervalSince1970 * 1000))) else {
            throw BackupError.busy("a backup or restore job is running; follow it at GET /q/v1/backups/jobs")
        }
        let (node, jobs, io) = (self.node, self.jobs, self.io)
        Task {
            do {
                if kind == "create" {
                    let made = try await io.run {
                        try node.createBackup(to: r.directory, incremental: r.incremental ?? false, partSize: r.partSize ?? 1 << 30, pins: selection) {
                            jobs.progress(job.id, $0, $1)
                        }
                    }
                    jobs.finish(job.id) { $0.created = BackupSetInfo(id: made.manifest.id, manifest: made.manifest) }
                } else {
                    let done = try await io.run { try node.restoreBackup(from: r.directory, id: r.id) { jobs.progress(job.id, $0, $1) } }
                    jobs.finish(job.id) {
                        $0.restored = BackupRestoreInfo(done)
                        let failures = done.pinFailures.count + done.headFailures.count
                        if failures > 0 { $0.error = "\(failures) pins or pointers were not restored (see restored.pinFailures and restored.headFailures)" }
                    }
                }
            } catch {
                jobs.finish(job.id) { $0.error = "\(error)" }
            }
        }
        return QindexAPI.ok(job, status: .accepted)
    }
}

extension BackupAPI {
    static let carType = "application/vnd.ipld.car"

    /// `POST /q/v1/backups/stream` (body `{pins?}`, may be empty): a set as one CAR stream
    /// (`BackupStream`), written as it is read. It shows as a job while it runs.
    func stream(_ request: Request) async throws -> Response {
        let body = try await RequestBodies.collect(request, limit: 16 << 10, timeout: limits.requestTimeout)
        var chosen: PinSelector?
        if body.readableBytes > 0 {
            struct Options: Decodable { var pins: String? }
            let o: Options
            do { o = try JSONDecoder().decode(Options.self, from: Data(buffer: body)) } catch { throw BackupError.invalid("the body is a JSON object {pins?}, or empty") }
            chosen = try o.pins.map(PinSelector.init)
        }
        let selection = chosen
        guard let job = jobs.begin(kind: "stream", directory: "-", at: Timestamps.format(UInt64(Date().timeIntervalSince1970 * 1000))) else {
            throw BackupError.busy("a backup or restore job is running; follow it at GET /q/v1/backups/jobs")
        }
        var headers = HTTPFields()
        headers[.contentType] = Self.carType
        let (node, jobs) = (self.node, self.jobs)
        do {
            return Response(status: .ok, headers: headers, body: try await KuboRPC.stream(downloads) { channel in
                do {
                    let (made, done) = try node.streamBackup(to: ChannelSink(channel), pins: selection) { jobs.progress(job.id, $0, $1) }
                    var sink = done
                    try sink.flush()
                    jobs.finish(job.id) { $0.created = BackupSetInfo(id: made.id, manifest: made) }
                } catch {
                    jobs.finish(job.id) { $0.error = "\(error)" }
                    throw error
                }
            })
        } catch {
            jobs.finish(job.id) { $0.error = "\(error)" }
            throw error
        }
    }

    /// `POST /q/v1/backups/restore` with a CAR body: restores a streamed set as it arrives and
    /// answers with what it did (no job to follow: the upload is the request).
    func restoreStream(_ request: Request, _ context: ServerContext) async throws -> Response {
        guard let job = jobs.begin(kind: "restore", directory: "-", at: Timestamps.format(UInt64(Date().timeIntervalSince1970 * 1000))) else {
            throw BackupError.busy("a backup or restore job is running; follow it at GET /q/v1/backups/jobs")
        }
        let (node, jobs) = (self.node, self.jobs)
        do {
            let done = try await BodyPipe.consume(request, context, slots: uploads, maximum: Int.max) { pipe in
                try node.restoreBackup(stream: pipe) { jobs.progress(job.id, $0, $1) }
            }
            let info = BackupRestoreInfo(done)
            jobs.finish(job.id) { $0.restored = info }
            return QindexAPI.ok(info)
        } catch {
            jobs.finish(job.id) { $0.error = "\(error)" }
            throw error
        }
    }
}

/// The jobs of this daemon's life (in memory; the audit log keeps what they did).
final class BackupJobs: Sendable {
    private let table = Mutex<[String: BackupJob]>([:])

    /// A new running job; nil when one is running already.
    func begin(kind: String, directory: String, at time: String) -> BackupJob? {
        let job = BackupJob(id: "job-" + String(format: "%016llx", UInt64.random(in: 0...UInt64.max)), kind: kind, directory: directory, started: time)
        return table.locked { t in
            guard !t.values.contains(where: { $0.state == "running" }) else { return nil }
            t[job.id] = job
            return job
        }
    }

    func progress(_ id: String, _ blocks: UInt64, _ bytes: UInt64) {
        table.locked { t in
            t[id]?.blocks = blocks
            t[id]?.bytes = bytes
        }
    }

    func finish(_ id: String, _ change: (inout BackupJob) -> Void) {
        table.locked { t in
            guard var j = t[id] else { return }
            change(&j)
            j.state = j.error == nil ? "succeeded" : "failed"
            j.finished = Timestamps.format(UInt64(Date().timeIntervalSince1970 * 1000))
            if let c = j.created { (j.blocks, j.bytes) = (c.blocks ?? j.blocks, c.bytes ?? j.bytes) }
            t[id] = j
        }
    }

    func get(_ id: String) -> BackupJob? { table.locked { $0[id] } }
    func all() -> [BackupJob] { table.locked { $0.values.sorted { $0.started < $1.started } } }
}

extension BackupRestoreInfo {
    /// A restore's result on the wire (the API's jobs and the CLI share it).
    public init(_ r: BackupRestored) {
        self.init(sets: r.sets, blocks: r.blocks, added: r.added, bytes: r.bytes, pinsRestored: r.pinsRestored, pinsPresent: r.pinsPresent,
                  conflicts: r.conflicts, pinFailures: r.pinFailures, headsMerged: r.headsMerged, headFailures: r.headFailures)
    }
}

/// Scheduled backups (`backup.schedule`): each due time, a set in `backup.directory` — full every
/// `backup.fullEvery`-th time (and when there is none to build on), else incremental — then the
/// `keep…` rules applied. A run shows as a job (`GET /q/v1/backups/jobs`); one due while another
/// job runs is skipped, logged.
struct BackupScheduler: Service {
    let node: Node
    let io: StorageThreads
    let jobs: BackupJobs
    let configuration: BackupConfiguration
    let logger: Logger

    func run() async throws {
        var count = 0
        var now = UInt64(Date().timeIntervalSince1970 * 1000)
        while let due = try configuration.next(after: now) {
            let wait = due > now ? due - now : 0
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(wait)) } } catch { return }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            now = UInt64(Date().timeIntervalSince1970 * 1000)
            let dir = configuration.directory
            guard let job = jobs.begin(kind: "create", directory: dir, at: Timestamps.format(now)) else {
                logger.warning("scheduled backup skipped: another backup or restore job is running")
                continue
            }
            let full = count % configuration.fullEvery == 0
            count += 1
            do {
                let made = try await io.run { () throws -> BackupCreated in
                    let base = try? BackupDirectory(dir).latest()
                    let made = try node.createBackup(to: dir, incremental: !full && base != nil, partSize: try configuration.checkedPartSize()) { jobs.progress(job.id, $0, $1) }
                    let c = configuration
                    if c.keepLast + c.keepDaily + c.keepWeekly > 0 {
                        let d = BackupDirectory(dir)
                        for id in try d.prunePlan(keepLast: c.keepLast, keepDaily: c.keepDaily, keepWeekly: c.keepWeekly).remove { try d.remove(id) }
                    }
                    return made
                }
                jobs.finish(job.id) { $0.created = BackupSetInfo(id: made.manifest.id, manifest: made.manifest) }
                logger.notice("scheduled backup", metadata: ["id": "\(made.manifest.id)", "blocks": "\(made.manifest.blocks)", "parent": "\(made.manifest.parent ?? "none")"])
            } catch {
                jobs.finish(job.id) { $0.error = "\(error)" }
                logger.error("scheduled backup failed", metadata: ["error": "\(error)"])
            }
            now = UInt64(Date().timeIntervalSince1970 * 1000)
        }
    }
}
