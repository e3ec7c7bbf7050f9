import Dispatch
import HTTPTypes
import Hummingbird
import Locking
import Metrics
import Synchronization

/// The per-request series of `/metrics`: `hb_requests`, `http_server_request_duration` and
/// `hb_request_errors` per route, method and status, and `http_server_active_requests` per method
/// (the series and labels of Hummingbird's `MetricsMiddleware`, which this replaces).
///
/// Hummingbird's middleware learns when a response has been written by wrapping every body in a
/// closure, and that turns a body already in memory into a stream: its head, bytes and end then
/// go to the connection one at a time, each a trip to the event loop and its own `write` (measured
/// on the gateway's 1 KiB GET: 2 writes a request instead of 1, −17% requests/s). Here a body in
/// memory is counted when the handler hands it over, and stays on Hummingbird's single-write path;
/// a body written later (`ResponseBody.streamed`) claims the request's completion and counts it
/// once written, or once dropped unwritten.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    private let series = SeriesCache()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let active = series.active(request.method)
        active.increment()
        let completion = RequestCompletion()
        do {
            let response = try await RequestCompletion.$current.withValue(completion) { try await next(request, context) }
            let endpoint = series.endpoint(route: context.endpointPath ?? "Unknown", method: request.method, status: response.status)
            completion.settle {
                endpoint.requests.increment()
                endpoint.duration.recordNanoseconds(Int64(clamping: DispatchTime.now().uptimeNanoseconds - start))
                active.decrement()
            }
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status ?? .internalServerError
            let endpoint = series.endpoint(route: context.endpointPath ?? "NotFound", method: request.method, status: status)
            endpoint.requests.increment()
            endpoint.errors.increment()
            active.decrement()
            throw error
        }
    }

    /// The metric objects, made once per label set (a lookup in the metrics backend costs more).
    private final class SeriesCache: Sendable {
        struct Endpoint: Sendable {
            let requests: Counter
            let duration: Metrics.Timer
            let errors: Counter
        }
        private struct Key: Hashable {
            let route: String
            let method: HTTPRequest.Method
            let status: Int
        }
        private let methods = Mutex<[HTTPRequest.Method: Meter]>([:])
        private let endpoints = Mutex<[Key: Endpoint]>([:])

        func active(_ method: HTTPRequest.Method) -> Meter {
            methods.locked { m in
                if let meter = m[method] { return meter }
                let meter = Meter(label: "http.server.active_requests", dimensions: [("http.request.method", method.description)])
                m[method] = meter
                return meter
            }
        }

        func endpoint(route: String, method: HTTPRequest.Method, status: HTTPResponse.Status) -> Endpoint {
            endpoints.locked { e in
                let key = Key(route: route, method: method, status: status.code)
                if let found = e[key] { return found }
                let labels = [("http.route", route), ("http.request.method", method.description), ("http.response.status_code", String(status.code))]
                let made = Endpoint(
                    requests: Counter(label: "hb.requests", dimensions: labels),
                    duration: Metrics.Timer(label: "http.server.request.duration", dimensions: labels, preferredDisplayUnit: .seconds),
                    errors: Counter(label: "hb.request.errors", dimensions: [labels[0], labels[1], ("error.type", String(status.code))]))
                e[key] = made
                return made
            }
        }
    }
}

/// When a request is done, for its metrics: at once for a body in memory, or when a streamed body
/// that claimed it (`ResponseBody.streamed`) has been written, or dropped unwritten.
final class RequestCompletion: Sendable {
    /// The completion of the request being handled (set by `RequestMetricsMiddleware`).
    @TaskLocal static var current: RequestCompletion?

    private enum State {
        case open
        case claimed
        /// Claimed and written before the handler returned (a body collected in memory by a
        /// middleware inside this one).
        case finished
        /// Claimed, and the middleware has said what to record.
        case waiting(@Sendable () -> Void)
        case done
    }
    private let state = Mutex<State>(.open)

    /// A streamed body takes the completion (nil if another already has).
    func claim() -> RequestCompletion? {
        state.locked { s in
            guard case .open = s else { return nil }
            s = .claimed
            return self
        }
    }

    /// The middleware's record: run now unless a streamed body claimed the completion, else when
    /// that body is done.
    func settle(_ record: @escaping @Sendable () -> Void) {
        let now: Bool = state.locked { s in
            switch s {
            case .open, .finished:
                s = .done
                return true
            case .claimed:
                s = .waiting(record)
                return false
            case .waiting, .done:
                return false
            }
        }
        if now { record() }
    }

    /// The streamed body has been written (or will never be).
    func finish() {
        let record: (@Sendable () -> Void)? = state.locked { s in
            if case .waiting(let r) = s {
                s = .done
                return r
            }
            if case .claimed = s { s = .finished }
            return nil
        }
        record?()
    }

    deinit { finish() }
}

extension ResponseBody {
    /// A body written after the handler has returned (a stream): the request is counted as done
    /// in the metrics once `write` has ended, or once the body is dropped unwritten.
    static func streamed(contentLength: Int? = nil, _ write: @escaping @Sendable (inout any ResponseBodyWriter) async throws -> Void) -> ResponseBody {
        let completion = RequestCompletion.current?.claim()
        return ResponseBody(contentLength: contentLength) { writer in
            defer { completion?.finish() }
            try await write(&writer)
        }
    }
}
